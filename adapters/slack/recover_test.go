package slack_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// longText is a text Slack takes in two messages.
func longText() string {
	return strings.Repeat("A paragraph of text.\n\n", 2500) + "THE END"
}

func TestFindSent(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	root := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "question"})
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: general, Thread: root.TS}
	// start returns a running adapter, as after a restart.
	start := func(t *testing.T) *slack.Adapter {
		a := newAdapter(t, fake, nil)
		run(t, a, nopHandler())
		waitReady(t, a, "nil", func(err error) bool { return err == nil })
		return a
	}
	posts := func() int { return len(fake.Snapshot().CallsTo("chat.postMessage")) }

	t.Run("a message posted before a restart is found", func(t *testing.T) {
		out := bridge.Outbound{ID: "msg-long", Room: room, Payload: chat.Text{Text: longText()}, Time: time.Now()}
		id, err := start(t).Send(waitCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(id); n != 2 {
			t.Fatalf("platform ids %q are %d parts, want 2", id, n)
		}
		got, err := start(t).FindSent(waitCtx(t), out)
		if err != nil || !got.Complete() || !slices.Equal(got, id) {
			t.Errorf("FindSent = %q, %v; want %q", got, err, id)
		}
	})
	t.Run("a message not posted is not found", func(t *testing.T) {
		out := bridge.Outbound{ID: "msg-never", Room: room, Payload: chat.Text{Text: "never"}, Time: time.Now()}
		if found, err := start(t).FindSent(waitCtx(t), out); err != nil || found.Found() {
			t.Errorf("FindSent = %q, %v; want not found", found, err)
		}
	})
	t.Run("of a message posted in part, only the rest is posted", func(t *testing.T) {
		out := bridge.Outbound{ID: "msg-partial", Room: room, Payload: chat.Text{Text: longText()}, Time: time.Now()}
		first, err := start(t).Send(waitCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		ids := first
		if _, err := fake.DeleteMessage(general, ids[1]); err != nil { // as if the crash came before it
			t.Fatal(err)
		}
		a := start(t)
		found, err := a.FindSent(waitCtx(t), out)
		if err != nil || found.Complete() {
			t.Fatalf("FindSent = %q, %v; want not found", found, err)
		}
		before := posts()
		out.Posted = found
		id, err := a.Send(waitCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		if n := posts() - before; n != 1 {
			t.Errorf("%d posts, want 1 (the missing part)", n)
		}
		got := id
		if got[0] != ids[0] || !strings.HasSuffix(fake.Snapshot().Message(general, got[1]).Text, "THE END") {
			t.Errorf("platform id %q; want the first part %s kept and the end posted", id, ids[0])
		}
	})
	t.Run("the files of a long bloc are found part by part, by their titles", func(t *testing.T) {
		srv := fileServer(t)
		var items []chat.Payload
		for i := range 15 {
			items = append(items, chat.File{FileURL: srv.URL + "/report.pdf", Title: fmt.Sprint("Report ", i)})
		}
		top := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: dm} // history lists the newest first
		out := bridge.Outbound{ID: "msg-files", Room: top, Payload: chat.Bloc{Items: items}, Time: time.Now()}
		id, err := start(t).Send(waitCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 2 {
			t.Fatalf("platform ids %q, want 2 parts", id)
		}
		got, err := start(t).FindSent(waitCtx(t), out)
		if err != nil || !slices.Equal(got, id) {
			t.Errorf("FindSent = %q, %v; want %q", got, err, id)
		}
	})
	t.Run("an uploaded file is found by its title", func(t *testing.T) {
		srv := fileServer(t)
		out := bridge.Outbound{ID: "msg-file", Room: room, Payload: chat.File{FileURL: srv.URL + "/report.pdf", Title: "Report"}, Time: time.Now()}
		id, err := start(t).Send(waitCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := start(t).FindSent(waitCtx(t), out)
		if err != nil || !got.Complete() || !slices.Equal(got, id) {
			t.Errorf("FindSent = %q, %v; want %q", got, err, id)
		}
	})
}

func TestEditAndDelete(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	a := newAdapter(t, fake, nil)
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: dm}
	ctx := waitCtx(t)
	id, err := a.Send(ctx, bridge.Outbound{ID: "m1", Room: room, Payload: chat.Text{Text: longText()}, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ids := id
	t.Run("an edit to a shorter text updates the first part and deletes the rest", func(t *testing.T) {
		if _, err := a.Edit(ctx, room, id, chat.Markdown{Markdown: "**short** now"}); err != nil {
			t.Fatal(err)
		}
		st := fake.Snapshot()
		if m := st.Message(dm, ids[0]); m.Text != "*short* now" {
			t.Errorf("first part shows %q", m.Text)
		}
		if !st.Message(dm, ids[1]).Deleted {
			t.Error("second part not deleted")
		}
	})
	t.Run("delete removes every part, and again is no error", func(t *testing.T) {
		for range 2 {
			if err := a.Delete(ctx, room, id); err != nil {
				t.Fatal(err)
			}
		}
		if !fake.Snapshot().Message(dm, ids[0]).Deleted {
			t.Error("first part not deleted")
		}
	})
}

func TestThinkingIndicator(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	root := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "question"})
	target := bridge.ReplyTarget{Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: general, Thread: root.TS}, MessageID: root.TS, UserID: alice}
	reactions := func() []slacktest.Reaction { return fake.Snapshot().Message(general, root.TS).Reactions }

	t.Run("when the status fails, a reaction shows instead", func(t *testing.T) {
		a := newAdapter(t, fake, nil)
		run(t, a, nopHandler())
		waitReady(t, a, "nil", func(err error) bool { return err == nil })
		fake.FailMethod("assistant.threads.setStatus", "not_allowed", 1)
		if err := a.Typing(waitCtx(t), target, true); err != nil {
			t.Fatal(err)
		}
		if r := reactions(); len(r) != 1 || r[0].Name != "eyes" {
			t.Errorf("reactions %+v, want eyes", r)
		}
		if err := a.Typing(waitCtx(t), target, false); err != nil {
			t.Fatal(err)
		}
		if r := reactions(); len(r) != 0 {
			t.Errorf("reactions %+v after the reply, want none", r)
		}
	})
	t.Run("the reaction is configurable", func(t *testing.T) {
		a := newAdapter(t, fake, func(c *slack.Config) { c.Thinking, c.ThinkingEmoji = slack.ThinkingReaction, ":hourglass:" })
		if err := a.Typing(waitCtx(t), target, true); err != nil {
			t.Fatal(err)
		}
		if r := reactions(); len(r) != 1 || r[0].Name != "hourglass" {
			t.Errorf("reactions %+v, want hourglass", r)
		}
	})
	t.Run("off shows nothing", func(t *testing.T) {
		a := newAdapter(t, fake, func(c *slack.Config) { c.Thinking = slack.ThinkingOff })
		before := len(fake.Snapshot().Calls)
		if err := a.Typing(waitCtx(t), target, true); err != nil {
			t.Fatal(err)
		}
		if n := len(fake.Snapshot().Calls) - before; n != 0 {
			t.Errorf("%d calls", n)
		}
	})
}

func TestFileEdges(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	a := newAdapter(t, fake, nil)
	ctx := waitCtx(t)
	t.Run("an image in a data URL is uploaded", func(t *testing.T) {
		id, err := a.Send(ctx, bridge.Outbound{ID: "m-data", Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: dm},
			Payload: chat.Image{ImageURL: "data:image/png;base64,iVBORw0KGgo="}, Time: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		st := fake.Snapshot()
		m := st.Message(dm, id.First())
		if m == nil || len(id) != 1 || len(m.Files) != 1 {
			t.Fatalf("message %q: %+v; want one file", id, m)
		}
		if f := st.Files[m.Files[0]]; f.Name != "image.png" || string(f.Content) != "\x89PNG\r\n\x1a\n" {
			t.Errorf("file %s with %q", f.Name, f.Content)
		}
	})
	t.Run("a file that is gone is not found", func(t *testing.T) {
		_, _, err := a.OpenFile(ctx, "F0000GONE")
		if !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("OpenFile: %v; want ErrNotFound", err)
		}
	})
	t.Run("a file over the limit is refused", func(t *testing.T) {
		small := newAdapter(t, fake, func(c *slack.Config) { c.MaxFileBytes = 4 })
		f := fake.AddFile(slacktest.File{Name: "big.txt", Mimetype: "text/plain", User: alice, Content: []byte("too big")})
		if _, _, err := small.OpenFile(ctx, f.ID); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("OpenFile: %v; want the limit named", err)
		}
	})
}
