package matrix_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// bigCarousel is a carousel of about 39 KB as the Chat API sends it: cards
// with long subtitles full of characters HTML and JSON escape.
func bigCarousel(t *testing.T) chat.Carousel {
	var c chat.Carousel
	for i := 1; i <= 60; i++ {
		c.Items = append(c.Items, chat.Card{
			Title:    fmt.Sprintf("Card %d", i),
			Subtitle: strings.Repeat(fmt.Sprintf("Plan %d <fast> & \"cheap\", ", i), 16),
			ImageURL: fmt.Sprintf("https://example.com/images/card-%d.png", i),
			Actions: []chat.CardAction{
				{Action: chat.ActionPostback, Label: fmt.Sprintf("Pick %d", i), Value: fmt.Sprintf("pick-%d", i)},
				{Action: chat.ActionURL, Label: "Details", Value: fmt.Sprintf("https://example.com/plans/%d", i)},
				{Action: chat.ActionSay, Label: fmt.Sprintf("Ask about %d", i), Value: fmt.Sprintf("about %d", i)},
			},
		})
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 39_000 {
		t.Fatalf("the carousel is %d bytes of JSON, want at least 39,000", len(b))
	}
	return c
}

// bigChoice is a choice of 1,300 options.
func bigChoice() chat.Choice {
	c := chat.Choice{Text: "Which one?"}
	for i := 1; i <= 1300; i++ {
		c.Options = append(c.Options, chat.ChoiceOption{Label: fmt.Sprintf("Option %d", i), Value: fmt.Sprintf("v%d", i)})
	}
	return c
}

// checkAllShown checks that the bodies of the parts, in order, show every
// card and option of p, numbered in order, and the hint to answer once, at
// the end.
func checkAllShown(t *testing.T, p chat.Payload, bodies []string) {
	t.Helper()
	joined := strings.Join(bodies, "\n")
	n := 0
	var want []string
	switch p := p.(type) {
	case chat.Carousel:
		for i, c := range p.Items {
			n++
			want = append(want, c.Title+"\n", fmt.Sprintf("  %d. Pick %d\n", n, i+1), fmt.Sprintf("  - Details: https://example.com/plans/%d\n", i+1))
			n++
			want = append(want, fmt.Sprintf("  %d. Ask about %d", n, i+1))
		}
	case chat.Choice:
		want = append(want, p.Text+"\n")
		for i, o := range p.Options {
			want = append(want, fmt.Sprintf("  %d. %s\n", i+1, o.Label))
		}
	}
	at := 0
	for _, w := range want {
		i := strings.Index(joined[at:], w)
		if i < 0 {
			t.Fatalf("the parts do not show %q (in order)", w)
		}
		at += i + len(w)
	}
	if c := strings.Count(joined, "(answer with a number or a label)"); c != 1 || !strings.HasSuffix(bodies[len(bodies)-1], "(answer with a number or a label)") {
		t.Errorf("the hint shows %d times, and at the end: %v", c, strings.HasSuffix(bodies[len(bodies)-1], "(answer with a number or a label)"))
	}
}

func TestLargeOptionsAreSplitWithinEventLimits(t *testing.T) {
	sess, err := crypto.NewOutboundGroupSession("!room:example.org", &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess.Shared = true
	for _, p := range []chat.Payload{bigCarousel(t), bigChoice()} {
		t.Run(p.PayloadType(), func(t *testing.T) {
			parts := matrix.Render(p)
			if len(parts) < 2 {
				t.Fatalf("%d parts, want several", len(parts))
			}
			var bodies []string
			for i, c := range parts {
				raw, err := json.Marshal(c)
				if err != nil {
					t.Fatal(err)
				}
				if len(raw) > 32<<10 {
					t.Errorf("part %d has %d bytes of content", i, len(raw))
				}
				// Encrypted as a client does it: the ciphertext alone, with a
				// generous 4 KB for the rest of the event, stays under 64 KiB.
				plain, _ := json.Marshal(map[string]any{"type": "m.room.message", "content": c, "room_id": "!room:example.org"})
				ct, err := sess.Encrypt(plain)
				if err != nil {
					t.Fatal(err)
				}
				if len(ct)+4096 > 65536 {
					t.Errorf("part %d encrypts to %d bytes of ciphertext", i, len(ct))
				}
				bodies = append(bodies, c.Body)
			}
			checkAllShown(t, p, bodies)
		})
	}
}

func TestLargeRepliesArePostedWhole(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain room", true: "encrypted room"}[encrypted], func(t *testing.T) {
			r := newRig(t, shared, encrypted)
			r.start()
			alice := newPerson(t, shared, "alice", encrypted)
			room := dm(alice, r, encrypted)
			key := bridge.RoomKey{Platform: matrix.Platform, Room: string(room)}
			send := func(t *testing.T, name string, p chat.Payload) {
				posted, err := r.ad.Send(t.Context(), bridge.Outbound{ID: chat.MessageID(name), Room: key, Payload: p})
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if !posted.Complete() || len(posted) < 2 {
					t.Fatalf("Send posted %q, want several parts, all posted", posted)
				}
				var bodies []string
				for _, evt := range posted {
					got := alice.wait("a part of the reply", func(e *event.Event) bool { return e.ID == id.EventID(evt) })
					bodies = append(bodies, got.Content.AsMessage().Body)
				}
				checkAllShown(t, p, bodies)
			}
			t.Run("a 39 KB carousel", func(t *testing.T) { send(t, "carousel", bigCarousel(t)) })
			t.Run("a choice of 1,300 options", func(t *testing.T) { send(t, "choice", bigChoice()) })
			t.Run("a part the homeserver refuses as too large is split", func(t *testing.T) {
				// As if the adapter's budget were larger than the homeserver's limit.
				matrix.SetBudget(r.ad, 1<<20)
				defer matrix.SetBudget(r.ad, 32<<10)
				if n := len(matrix.RenderMax(bigCarousel(t), 1<<20)); n != 1 {
					t.Fatalf("the carousel renders as %d parts with the larger budget, want 1", n)
				}
				send(t, "carousel-refused", bigCarousel(t))
			})
		})
	}
}
