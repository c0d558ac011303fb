package matrixtest

import (
	"database/sql"
	"path/filepath"
	"testing"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	_ "modernc.org/sqlite" // the "sqlite" driver of WithCrypto
)

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

// WithCrypto gives cli end-to-end encryption (mautrix's crypto helper with
// goolm) on a SQLite file of its own in t.TempDir, opened with the pure-Go
// modernc driver (registered as "sqlite"), and closes it when the test ends.
// dbutil's dialect argument only picks the SQL flavour; a path string instead
// of the *dbutil.Database would make the helper open the cgo driver
// "sqlite3-fk-wal". Call it before syncing: Init adds the helper's handlers
// to the syncer, and its store replaces the client's in-memory sync store.
func WithCrypto(t testing.TB, cli *mautrix.Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crypto.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte("matrixtest pickle key "+string(cli.UserID)), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Init(t.Context()); err != nil {
		t.Fatalf("matrixtest: crypto init: %v", err)
	}
	cli.Crypto = helper
	t.Cleanup(func() {
		if err := helper.Close(); err != nil {
			t.Errorf("matrixtest: close crypto db: %v", err)
		}
	})
}
