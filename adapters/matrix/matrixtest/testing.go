package matrixtest

import "testing"

// StartT starts a homeserver in t.TempDir and stops it when the test ends.
// Any failure to build or start Dendrite fails the test (it never skips) with
// the end of Dendrite's log. At cleanup it reports, as a test error, a
// homeserver that crashed or would not stop, and logs the end of Dendrite's
// log if the test failed.
func StartT(t testing.TB, opts ...Option) *Homeserver {
	t.Helper()
	h, err := Start(t.Context(), t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("matrixtest: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Errorf("matrixtest: %v\n--- last lines of dendrite.log:\n%s", err, h.LogTail(logTailLines))
		} else if t.Failed() {
			t.Logf("matrixtest: last lines of %s/dendrite.log:\n%s", h.Dir, h.LogTail(logTailLines))
		}
	})
	return h
}
