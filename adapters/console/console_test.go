package console_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/console"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
)

// syncBuffer is a bytes.Buffer safe for the adapter's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var room = bridge.RoomKey{Platform: console.Platform, Room: console.Room}

func TestSendRendersEveryPayloadType(t *testing.T) {
	for _, s := range bridgetest.Samples() {
		t.Run(s.Name, func(t *testing.T) {
			var out syncBuffer
			a := console.New(console.Config{In: strings.NewReader(""), Out: &out})
			if _, err := a.Send(t.Context(), bridge.Outbound{ID: "m1", Room: room, Payload: s.Payload}); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			for _, want := range s.Want {
				if !strings.Contains(got, want) {
					t.Errorf("output %q lacks %q", got, want)
				}
			}
			for l := range strings.SplitSeq(strings.TrimSuffix(got, "\n"), "\n") {
				if !strings.HasPrefix(l, console.Prefix) {
					t.Errorf("line %q does not start with %q", l, console.Prefix)
				}
			}
		})
	}
}

func TestSendShowsLinksOfFilesAndImages(t *testing.T) {
	var out syncBuffer
	a := console.New(console.Config{In: strings.NewReader(""), Out: &out})
	for _, p := range []chat.Payload{
		chat.Image{ImageURL: "https://example.com/a.png"},
		chat.File{FileURL: "https://example.com/b.pdf", Title: "B"},
		chat.Card{Title: "T", Actions: []chat.CardAction{{Action: chat.ActionURL, Label: "Open", Value: "https://example.com/c"}}},
	} {
		if _, err := a.Send(t.Context(), bridge.Outbound{ID: "m", Room: room, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"https://example.com/a.png", "https://example.com/b.pdf", "Open: https://example.com/c"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

// recorder collects what the adapter hands to the bridge.
type recorder struct {
	mu  sync.Mutex
	got []bridge.Inbound
	ch  chan struct{}
}

func (r *recorder) HandleInbound(ctx context.Context, in bridge.Inbound) error {
	r.mu.Lock()
	r.got = append(r.got, in)
	r.mu.Unlock()
	r.ch <- struct{}{}
	return nil
}

func (r *recorder) next(t *testing.T) bridge.Inbound {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no inbound message")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// TestChoicesAreNumbered checks the console's side of choices: they are
// numbered, and every line reaches the bridge as the person typed it (the
// bridge turns an answer into the option's value; see the bridge's
// TestAnswersToChoicesByNumberOrLabel).
func TestChoicesAreNumbered(t *testing.T) {
	pr, pw := io.Pipe()
	var out syncBuffer
	a := console.New(console.Config{In: pr, Out: &out, UserID: "me", UserName: "Me"})
	var _ bridge.TextChoices = a
	rec := &recorder{ch: make(chan struct{}, 10)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, rec) }()
	defer func() {
		cancel()
		pw.Close()
		<-done
	}()
	say := func(line string) bridge.Inbound {
		if _, err := io.WriteString(pw, line+"\n"); err != nil {
			t.Fatal(err)
		}
		return rec.next(t)
	}

	in := say("hello")
	if in.Action != nil || in.Text != "hello" || !in.DM || in.Sender.ID != "me" || in.Key == "" {
		t.Errorf("plain line became %+v", in)
	}
	choice := chat.Choice{Text: "Size?", Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}}
	if _, err := a.Send(t.Context(), bridge.Outbound{ID: "offer", Room: room, Payload: choice}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "2. Large") || !strings.Contains(out.String(), "answer with a number or a label") {
		t.Errorf("choice not numbered: %q", out.String())
	}
	if in := say("2"); in.Action != nil || in.Text != "2" {
		t.Errorf("an answer reached the bridge as %+v, want the line as typed", in)
	}
}

func TestKeysAreUniqueAcrossSessions(t *testing.T) {
	keys := map[bridge.EventKey]bool{}
	for i := range 2 {
		a := console.New(console.Config{In: strings.NewReader("same line\n"), Out: io.Discard, Session: "s" + string(rune('a'+i))})
		rec := &recorder{ch: make(chan struct{}, 1)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, rec) }()
		keys[rec.next(t).Key] = true
		<-a.EOF()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) != 2 {
		t.Errorf("the same line in two sessions got keys %v; they must differ", keys)
	}
}
