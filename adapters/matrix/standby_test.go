package matrix_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
)

// TestStandbyReplicaOpensFiles runs the adapter in one replica and builds
// it, not running, in another on the same store, as a replica standing by
// while the first runs the sync loop: the second serves a file link with
// the access token the first keeps in the store.
func TestStandbyReplicaOpensFiles(t *testing.T) {
	acc := newAccount(t, shared, "standby")
	st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
	leader, err := matrix.New(options(t, shared, acc, st, db))
	if err != nil {
		t.Fatal(err)
	}
	runAdapter(t, leader, recorder{make(chan bridge.Inbound, 1)})
	waitReady(t, leader)

	cli, err := mautrix.NewClient(shared.URL, acc.ID, acc.Token)
	if err != nil {
		t.Fatal(err)
	}
	up, err := cli.UploadBytes(t.Context(), []byte("a file a person sent"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}

	standby, err := matrix.New(options(t, shared, acc, st, db))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, typ, err := standby.OpenFile(ctx, up.ContentURI.String())
	if err != nil {
		t.Fatalf("OpenFile on the replica standing by: %v", err)
	}
	body, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(body) != "a file a person sent" || typ != "text/plain" {
		t.Errorf("OpenFile read %q (%s), %v; want the file", body, typ, err)
	}
}
