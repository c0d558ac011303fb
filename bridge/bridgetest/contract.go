package bridgetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// Harness connects the contract suite to one adapter and the platform it
// talks to (a fake speaking the real protocol, or a real server).
type Harness struct {
	// New returns a new adapter, not yet running, connected to the
	// platform.
	New func(t *testing.T) bridge.Adapter
	// Room is a room where a person and the bot both are.
	Room bridge.RoomKey
	// Say makes a person post text in room (in room.Thread when set) and
	// returns the platform id of the message.
	Say func(ctx context.Context, room bridge.RoomKey, text string) (string, error)
	// Seen returns the messages the bot has in room as the platform shows
	// them, oldest first.
	Seen func(ctx context.Context, room bridge.RoomKey) ([]Seen, error)
	// Redelivers is set when the platform delivers an event again that the
	// adapter did not acknowledge (the handler returned an error).
	Redelivers bool
	// Timeout bounds each wait of the suite. Default 30 s.
	Timeout time.Duration
}

// Seen is a bot message as the platform shows it.
type Seen struct {
	ID string
	// Thread is the thread the message is in, empty at the top level.
	Thread string
	// Text is everything a person can read in it (text, alt texts, button
	// labels, file names and links), in any format.
	Text string
}

// Sample is a payload of each type with strings its rendering must show.
type Sample struct {
	Name    string
	Payload chat.Payload
	Want    []string
}

// Samples returns one payload of every type the Chat API has. (Unknown types
// never reach adapters: the bridge turns them into text first.)
func Samples() []Sample {
	return []Sample{
		{"text", chat.Text{Text: "plain hello"}, []string{"plain hello"}},
		{"markdown", chat.Markdown{Markdown: "some **bold** news"}, []string{"bold", "news"}},
		{"image", chat.Image{ImageURL: "https://example.com/cat.png"}, []string{"cat.png"}},
		{"audio", chat.Audio{AudioURL: "https://example.com/song.mp3"}, []string{"song.mp3"}},
		{"video", chat.Video{VideoURL: "https://example.com/clip.mp4"}, []string{"clip.mp4"}},
		{"file", chat.File{FileURL: "https://example.com/report.pdf", Title: "Quarterly report"}, []string{"Quarterly report"}},
		{"location", chat.Location{Latitude: 48.8584, Longitude: 2.2945, Address: "Champ de Mars, Paris", Title: "Eiffel Tower"},
			[]string{"Eiffel Tower"}},
		{"card", chat.Card{Title: "Pro plan", Subtitle: "All features", ImageURL: "https://example.com/pro.png",
			Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Buy", Value: "buy_pro"},
				{Action: chat.ActionURL, Label: "Details", Value: "https://example.com/pro"}}},
			[]string{"Pro plan", "Buy", "Details"}},
		{"carousel", chat.Carousel{Items: []chat.Card{
			{Title: "Red shirt", Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Pick red", Value: "red"}}},
			{Title: "Blue shirt", Actions: []chat.CardAction{{Action: chat.ActionSay, Label: "Pick blue", Value: "blue"}}},
		}}, []string{"Red shirt", "Blue shirt", "Pick red", "Pick blue"}},
		{"choice", chat.Choice{Text: "Which size?", Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}},
			[]string{"Which size?", "Small", "Large"}},
		{"dropdown", chat.Dropdown{Text: "Pick a country", Options: []chat.ChoiceOption{{Label: "France", Value: "fr"}, {Label: "Japan", Value: "jp"}}},
			[]string{"Pick a country", "France", "Japan"}},
		{"bloc", chat.Bloc{Items: []chat.Payload{chat.Text{Text: "bloc first"}, chat.Image{ImageURL: "https://example.com/bloc.png"}}},
			[]string{"bloc first", "bloc.png"}},
	}
}

// recorder is a Handler that records what it gets and can fail on demand.
type recorder struct {
	mu      sync.Mutex
	got     []bridge.Inbound
	failing int
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) HandleInbound(ctx context.Context, in bridge.Inbound) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, in)
	close(r.changed)
	r.changed = make(chan struct{})
	if r.failing > 0 {
		r.failing--
		return errors.New("bridgetest: not stored (simulated)")
	}
	return nil
}

func (r *recorder) wait(ctx context.Context, cond func([]bridge.Inbound) bool) ([]bridge.Inbound, error) {
	for {
		r.mu.Lock()
		got := append([]bridge.Inbound(nil), r.got...)
		ch := r.changed
		r.mu.Unlock()
		if cond(got) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, context.Cause(ctx)
		case <-ch:
		}
	}
}

func withText(text string) func([]bridge.Inbound) bool {
	return func(got []bridge.Inbound) bool {
		for _, in := range got {
			if strings.Contains(in.Text, text) {
				return true
			}
		}
		return false
	}
}

// RunAdapterContract checks the behaviour every adapter owes the bridge.
func RunAdapterContract(t *testing.T, h Harness) {
	t.Helper()
	if h.Timeout <= 0 {
		h.Timeout = 30 * time.Second
	}
	start := func(t *testing.T) (bridge.Adapter, *recorder) {
		a := h.New(t)
		rec := newRecorder()
		RunAdapter(t, a, rec)
		return a, rec
	}
	waitCtx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("names its platform", func(t *testing.T) {
		if got := h.New(t).Platform(); got != h.Room.Platform {
			t.Errorf("Platform() = %q, want %q", got, h.Room.Platform)
		}
	})

	t.Run("hands a person's message to the handler", func(t *testing.T) {
		_, rec := start(t)
		ctx := waitCtx(t)
		if err := warmUp(ctx, h, rec); err != nil {
			t.Fatal(err)
		}
		text := "contract hello " + time.Now().Format("150405.000000")
		id, err := h.Say(ctx, h.Room, text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rec.wait(ctx, withText(text))
		if err != nil {
			t.Fatalf("message %q never reached the handler: %v", text, err)
		}
		in := find(got, text)
		switch {
		case in.Key == "":
			t.Error("inbound has no event key")
		case in.Room.Platform != h.Room.Platform || in.Room.Room != h.Room.Room:
			t.Errorf("inbound room = %v, want %v", in.Room, h.Room)
		case in.Sender.ID == "":
			t.Error("inbound has no sender id")
		case in.MessageID != id:
			t.Errorf("inbound message id = %q, want %q", in.MessageID, id)
		case in.Time.IsZero():
			t.Error("inbound has no time")
		}
	})

	if h.Redelivers {
		t.Run("delivers again what the handler did not store", func(t *testing.T) {
			_, rec := start(t)
			ctx := waitCtx(t)
			if err := warmUp(ctx, h, rec); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			rec.failing = 1
			rec.mu.Unlock()
			text := "contract redelivery " + time.Now().Format("150405.000000")
			if _, err := h.Say(ctx, h.Room, text); err != nil {
				t.Fatal(err)
			}
			got, err := rec.wait(ctx, func(got []bridge.Inbound) bool { return count(got, text) >= 2 })
			if err != nil {
				t.Fatalf("refused event was not delivered again: %v", err)
			}
			var keys []bridge.EventKey
			for _, in := range got {
				if strings.Contains(in.Text, text) {
					keys = append(keys, in.Key)
				}
			}
			if keys[0] != keys[1] {
				t.Errorf("redelivered event has key %q, first delivery %q; they must match for de-duplication", keys[1], keys[0])
			}
		})
	}

	t.Run("posts every payload type", func(t *testing.T) {
		a, rec := start(t)
		ctx := waitCtx(t)
		if err := warmUp(ctx, h, rec); err != nil {
			t.Fatal(err)
		}
		for _, s := range Samples() {
			before, err := h.Seen(ctx, h.Room)
			if err != nil {
				t.Fatal(err)
			}
			id, err := a.Send(ctx, bridge.Outbound{ID: chat.MessageID("contract-" + s.Name + "-" + time.Now().Format("150405.000000")),
				Bot: "contract", Room: h.Room, Payload: s.Payload, Time: time.Now()})
			if err != nil {
				t.Errorf("%s: Send: %v", s.Name, err)
				continue
			}
			if !id.Complete() {
				t.Errorf("%s: Send returned platform ids %q, want one for every part", s.Name, id)
			}
			seen, err := h.Seen(ctx, h.Room)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			for _, m := range seen[len(before):] {
				text.WriteString(m.Text)
				text.WriteByte('\n')
			}
			for _, want := range s.Want {
				if !strings.Contains(text.String(), want) {
					t.Errorf("%s: the platform shows %q, which lacks %q", s.Name, text.String(), want)
				}
			}
		}
	})

	t.Run("posts into the thread", func(t *testing.T) {
		a, rec := start(t)
		ctx := waitCtx(t)
		if err := warmUp(ctx, h, rec); err != nil {
			t.Fatal(err)
		}
		root, err := h.Say(ctx, h.Room, "contract thread root")
		if err != nil {
			t.Fatal(err)
		}
		room := h.Room
		room.Thread = root
		if _, err := a.Send(ctx, bridge.Outbound{ID: chat.MessageID("contract-thread-" + root), Bot: "contract", Room: room,
			ReplyTo: root, Payload: chat.Text{Text: "contract in thread"}, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		seen, err := h.Seen(ctx, h.Room)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range seen {
			if strings.Contains(m.Text, "contract in thread") {
				if m.Thread != root {
					t.Errorf("reply is in thread %q, want %q", m.Thread, root)
				}
				return
			}
		}
		t.Errorf("reply not found among %d bot messages", len(seen))
	})

	t.Run("does not hand its own posts back", func(t *testing.T) {
		a, rec := start(t)
		ctx := waitCtx(t)
		if err := warmUp(ctx, h, rec); err != nil {
			t.Fatal(err)
		}
		own := "contract own post " + time.Now().Format("150405.000000")
		if _, err := a.Send(ctx, bridge.Outbound{ID: chat.MessageID("contract-own-" + own), Bot: "contract", Room: h.Room,
			Payload: chat.Text{Text: own}, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		marker := "contract marker " + time.Now().Format("150405.000000")
		if _, err := h.Say(ctx, h.Room, marker); err != nil {
			t.Fatal(err)
		}
		got, err := rec.wait(ctx, withText(marker))
		if err != nil {
			t.Fatalf("marker never arrived: %v", err)
		}
		if count(got, own) > 0 {
			t.Errorf("the adapter handed its own post %q to the bridge as inbound", own)
		}
	})

	t.Run("splits long texts without losing any", func(t *testing.T) {
		a, rec := start(t)
		ctx := waitCtx(t)
		if err := warmUp(ctx, h, rec); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i := 0; b.Len() < 60_000; i++ {
			b.WriteString("Paragraph number ")
			b.WriteString(strings.Repeat("x", i%50))
			b.WriteString(" ends here.\n\n")
		}
		b.WriteString("THE-END")
		before, err := h.Seen(ctx, h.Room)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Send(ctx, bridge.Outbound{ID: chat.MessageID("contract-long-" + time.Now().Format("150405.000000")),
			Bot: "contract", Room: h.Room, Payload: chat.Text{Text: b.String()}, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		seen, err := h.Seen(ctx, h.Room)
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, m := range seen[len(before):] {
			all.WriteString(m.Text)
		}
		if !strings.Contains(all.String(), "THE-END") || strings.Count(all.String(), "ends here.") < strings.Count(b.String(), "ends here.") {
			t.Errorf("long text lost content: %d paragraphs shown of %d", strings.Count(all.String(), "ends here."), strings.Count(b.String(), "ends here."))
		}
	})

	t.Run("edits its post", func(t *testing.T) {
		a, rec := start(t)
		ed, ok := a.(bridge.Editor)
		if !ok {
			return // not an Editor: nothing owed
		}
		ctx := waitCtx(t)
		if err := warmUp(ctx, h, rec); err != nil {
			t.Fatal(err)
		}
		posted, err := a.Send(ctx, bridge.Outbound{ID: chat.MessageID("contract-edit-" + time.Now().Format("150405.000000")),
			Bot: "contract", Room: h.Room, Payload: chat.Text{Text: "contract before edit"}, Time: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if len(posted) != 1 {
			t.Fatalf("a short text was posted as %d parts, want 1", len(posted))
		}
		id := posted.First()
		if _, err := ed.Edit(ctx, h.Room, posted, chat.Text{Text: "contract after edit"}); err != nil {
			t.Fatal(err)
		}
		seen, err := h.Seen(ctx, h.Room)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range seen {
			if m.ID == id {
				if !strings.Contains(m.Text, "contract after edit") {
					t.Errorf("edited message shows %q", m.Text)
				}
				return
			}
		}
		t.Errorf("edited message %s not found", id)
	})
}

// warmUp says something until the handler sees it, because an adapter may
// need a moment after Run starts before it receives events.
func warmUp(ctx context.Context, h Harness, rec *recorder) error {
	for i := 1; ; i++ {
		text := fmt.Sprintf("contract warm-up %d %s", i, time.Now().Format("150405.000000"))
		if _, err := h.Say(ctx, h.Room, text); err != nil {
			return err
		}
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := rec.wait(short, withText(text))
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.New("the adapter never handed a message to the handler")
		}
	}
}

func find(got []bridge.Inbound, text string) bridge.Inbound {
	for _, in := range got {
		if strings.Contains(in.Text, text) {
			return in
		}
	}
	return bridge.Inbound{}
}

func count(got []bridge.Inbound, text string) int {
	n := 0
	for _, in := range got {
		if strings.Contains(in.Text, text) {
			n++
		}
	}
	return n
}
