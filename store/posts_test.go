package store_test

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	"github.com/botbridge/botbridge/migrations"
)

// TestPostsOfRepliesBeforeTheMigration checks that migration 0004 fills
// posts with the replies posted before it (the contract suite checks Post
// itself).
func TestPostsOfRepliesBeforeTheMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations.FS, "*.sql")
	slices.Sort(files)
	for _, f := range files {
		if f >= "0004" {
			break
		}
		body, _ := fs.ReadFile(migrations.FS, f)
		if _, err := old.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := old.Exec(`PRAGMA user_version = 3;
		INSERT INTO conversations (id, bot, scope, platform, room, active_ms, created_ms) VALUES (7, 'bot', 'room', 'slack', 'C1', 1, 1);
		INSERT INTO deliveries (message_id, conversation, bot, platform, room, payload, state, platform_id, created_ms, received_ms)
			VALUES ('msg_old', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '["1600.1","1600.2"]', 1, 1),
			       -- the form before parts were explicit, which the migration must get past
			       ('msg_legacy', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '1500.1', 1, 1);`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db := openDB(t, path)
	for _, part := range []string{"1600.1", "1600.2"} {
		if p, err := db.Post(t.Context(), roomKey("C1", ""), part); err != nil || p.MessageID != "msg_old" || p.Conversation != 7 {
			t.Errorf("Post(%s) = %+v, %v", part, p, err)
		}
	}
}
