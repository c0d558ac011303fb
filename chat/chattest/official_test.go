package chattest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/botbridge/botbridge/chat/chattest"
)

// TestOfficialClient drives two emulators (shared and manual mode, with the
// demo bot) with the official client @botpress/chat 0.5.5 through
// testdata/official-client/test.mjs. It needs node and npm, and the npm
// registry the first time (npm ci), so it runs only when
// CHATTEST_OFFICIAL_CLIENT=1.
func TestOfficialClient(t *testing.T) {
	if os.Getenv("CHATTEST_OFFICIAL_CLIENT") != "1" {
		t.Skip("set CHATTEST_OFFICIAL_CLIENT=1 to run the official client against the emulator (needs node and npm)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found")
	}
	dir := filepath.Join("testdata", "official-client")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@botpress", "chat")); err != nil {
		cmd := exec.CommandContext(t.Context(), npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	const key = "official-client-encryption-key"
	shared := newEnvOver(t, chattest.Options{Bot: chattest.DemoBot()}, "h1") // node does not trust the TLS certificate
	manual := newEnvOver(t, chattest.Options{Bot: chattest.DemoBot(), EncryptionKey: key}, "h1")

	cmd := exec.CommandContext(t.Context(), node, "test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CHATTEST_SHARED_URL="+shared.url,
		"CHATTEST_MANUAL_URL="+manual.url,
		"CHATTEST_ENCRYPTION_KEY="+key,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node test.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("official client checks failed: %v", err)
	}
}
