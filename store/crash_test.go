package store_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
)

// childWrite enqueues inbound messages into the store at path and marks
// every other one sent, printing "enqueued ID" and "sent ID" after each
// commit, until it is killed.
func childWrite(path string) int {
	ctx := context.Background()
	db, err := store.Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	key := convKey("C1")
	reply := bridge.ReplyTarget{Room: key.Room, MessageID: "m", UserID: "U1"}
	for i := range 1_000_000 { // a bound, in case the parent is gone
		it, _, err := db.EnqueueInbound(ctx, key, newInbound("ev"+strconv.Itoa(i), key.Room, time.Now()), bridge.RoomKey{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("enqueued %d\n", it.ID)
		if i%2 == 1 {
			continue
		}
		if err := db.MarkInboundSent(ctx, it.ID, 1, chat.MessageID("msg"+strconv.Itoa(i)), true, reply); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("sent %d\n", it.ID)
	}
	return 0
}

func TestCrashSafety(t *testing.T) {
	t.Run("killed writer loses no committed row", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bridge.db")
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), self)
		cmd.Env = append(os.Environ(), childEnv+"=write", childPathEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// sent[id] says whether the child reported item id sent.
		sent := map[int64]bool{}
		sc := bufio.NewScanner(stdout)
		for len(sent) < 300 && sc.Scan() {
			verb, n, _ := strings.Cut(sc.Text(), " ")
			id, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			sent[id] = verb == "sent"
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		if len(sent) < 300 {
			t.Fatalf("child stopped after %d items: %v\n%s", len(sent), err, stderr.String())
		}
		if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
			t.Fatalf("no WAL left by the killed writer (%v): the test does not exercise recovery", err)
		}

		db := openDB(t, path)
		if got := pragma(t, mustSQL(t, db), "integrity_check"); got != "ok" {
			t.Errorf("integrity_check: %s", got)
		}
		for id, wasSent := range sent {
			var state string
			if err := mustSQL(t, db).QueryRowContext(t.Context(), "SELECT state FROM inbound WHERE id = ?", id).Scan(&state); err != nil {
				t.Fatalf("inbound %d reported committed: %v", id, err)
			}
			if wasSent && state != "sent" {
				t.Errorf("inbound %d reported sent is %s", id, state)
			}
		}
		if n := count(t, db, "SELECT count(*) FROM inbound"); n < len(sent) {
			t.Errorf("%d inbound rows, %d reported", n, len(sent))
		}
		// The store goes on working after recovery.
		enqueue(t, db, convKey("C1"), newInbound("after", roomKey("C1", ""), time.Now()))
	})

	t.Run("copy of an open store has every committed row", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "bridge.db")
		db := openDB(t, path)
		ctx := t.Context()
		var items []bridge.OutboxItem
		for i := range 40 {
			it := enqueue(t, db, convKey("C"+strconv.Itoa(i%4)), newInbound("ev"+strconv.Itoa(i), roomKey("C"+strconv.Itoa(i%4), ""), time.Now()))
			items = append(items, it)
			if i%2 == 0 {
				if err := db.MarkInboundSent(ctx, it.ID, 1, "msg", true, bridge.ReplyTarget{Room: it.Inbound.Room}); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := db.AddDelivery(ctx, bridge.Delivery{
				MessageID: chat.MessageID("bot-" + strconv.Itoa(i)), Conversation: it.Conversation, Bot: "bot",
				Target: bridge.ReplyTarget{Room: it.Inbound.Room}, Payload: chat.Text{Text: "hi"}, CreatedAt: time.Now(),
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.SetCursor(ctx, "matrix.next_batch", "s1"); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
			t.Fatalf("the rows are not in the WAL (%v): the test does not exercise recovery", err)
		}

		// What a kill -9 leaves: the database and its WAL, no clean close.
		crashed := filepath.Join(t.TempDir(), "bridge.db")
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		copyDB := openDB(t, crashed)
		pending, err := copyDB.PendingInbound(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 20 {
			t.Errorf("%d pending inbound, want 20", len(pending))
		}
		for i, it := range items {
			if i%2 == 0 {
				continue
			}
			next, err := copyDB.NextInbound(ctx, it.Conversation)
			if err != nil {
				t.Fatalf("next inbound of conversation %d: %v", it.Conversation, err)
			}
			if next.Conversation != it.Conversation {
				t.Errorf("next inbound in conversation %d, want %d", next.Conversation, it.Conversation)
			}
		}
		if ds, err := copyDB.PendingDeliveries(ctx, 0); err != nil || len(ds) != 40 {
			t.Errorf("%d pending deliveries, %v; want 40", len(ds), err)
		}
		if v, err := copyDB.Cursor(ctx, "matrix.next_batch"); err != nil || v != "s1" {
			t.Errorf("cursor = %q, %v", v, err)
		}
	})

	t.Run("second handle sees every committed row", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bridge.db")
		db := openDB(t, path)
		it := enqueue(t, db, convKey("C1"), newInbound("ev1", roomKey("C1", ""), time.Now()))
		other := openDB(t, path)
		got, err := other.NextInbound(t.Context(), it.Conversation)
		if err != nil || got.ID != it.ID {
			t.Fatalf("NextInbound = %d, %v; want %d", got.ID, err, it.ID)
		}
		// The first handle goes on writing after the second opened the file.
		it2 := enqueue(t, db, convKey("C1"), newInbound("ev2", roomKey("C1", ""), time.Now()))
		if ps, err := other.PendingInbound(t.Context(), 0); err != nil || len(ps) != 2 || ps[1].ID != it2.ID {
			t.Errorf("PendingInbound = %v, %v", ps, err)
		}
	})
}
