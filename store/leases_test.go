package store_test

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/migrations"
)

// TestLeasesOfConversationsBeforeTheMigration checks that migration 0006
// gives the conversations made before it the lease of their room (the
// contract suite checks the conversations made after it).
func TestLeasesOfConversationsBeforeTheMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations.FS, "*.sql")
	slices.Sort(files)
	for _, f := range files {
		if f >= "0006" {
			break
		}
		body, _ := fs.ReadFile(migrations.FS, f)
		if _, err := old.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := old.Exec(`PRAGMA user_version = 5;
		INSERT INTO conversations (id, bot, scope, platform, room, generation, active_ms, created_ms) VALUES
			(7, 'bot', 'room', 'slack', 'C1', 0, 1, 1), (8, 'bot', 'room', 'slack', 'C1', 1, 1, 1),
			(9, 'bot', 'room', 'slack', 'C2', 0, 1, 1), (10, 'bot', 'room', 'matrix', '!r:hs', 0, 1, 1);`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db := openDB(t, path)
	for id, room := range map[int64]bridge.RoomKey{
		7: {Platform: bridge.PlatformSlack, Room: "C1"}, 8: {Platform: bridge.PlatformSlack, Room: "C1"},
		9: {Platform: bridge.PlatformSlack, Room: "C2"}, 10: {Platform: bridge.PlatformMatrix, Room: "!r:hs"},
	} {
		var lease string
		if err := mustSQL(t, db).QueryRowContext(t.Context(), `SELECT lease FROM conversations WHERE id = ?`, id).Scan(&lease); err != nil {
			t.Fatal(err)
		}
		if want := bridge.LeaseOf(room); lease != want {
			t.Errorf("conversation %d of %s has lease %q, want %q", id, room, lease, want)
		}
	}
}
