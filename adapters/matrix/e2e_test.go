package matrix_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
)

// dm makes a direct chat of p's with the rig's bot and waits for the bot
// to join it.
func dm(p *person, r *rig, encrypted bool) id.RoomID {
	p.t.Helper()
	room := p.createRoom(encrypted, true, r.acc.ID)
	p.wait("the bot joining", joined(r.acc.ID, room))
	return room
}

func TestRoomAnswersMentionsAndThreads(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	carol := newPerson(t, shared, "carol", false)
	room := alice.createRoom(false, false, r.acc.ID, carol.cli.UserID)
	carol.join(room)
	alice.wait("the bot joining", joined(r.acc.ID, room))
	alice.wait("carol joining", joined(carol.cli.UserID, room))

	alice.say(room, "good morning everyone")
	name := r.acc.ID.Localpart()
	asked := alice.say(room, name+": what time is it?", r.acc.ID)
	reply := alice.wait("the bot's reply", fromWith(r.acc.ID, room, "echo: what time is it?")).Content.AsMessage()

	t.Run("the reply answers the mention, mentioning the person", func(t *testing.T) {
		if got := reply.RelatesTo.GetReplyTo(); got != asked {
			t.Errorf("reply is in reply to %q, want %q", got, asked)
		}
		if !reply.Mentions.Has(alice.cli.UserID) {
			t.Errorf("reply mentions %+v, want %s", reply.Mentions, alice.cli.UserID)
		}
	})
	t.Run("messages without a mention are not sent to the bot", func(t *testing.T) {
		if slices.Contains(r.bot.texts(), "good morning everyone") {
			t.Errorf("the bot got %q", r.bot.texts())
		}
	})

	root := alice.say(room, "a thread about lunch")
	inThread := func(text string, mention ...id.UserID) id.EventID {
		c := &event.MessageEventContent{MsgType: event.MsgText, Body: text, Mentions: &event.Mentions{UserIDs: mention}}
		c.RelatesTo = (&event.RelatesTo{}).SetThread(root, root)
		return alice.send(room, c)
	}
	inThread("hey "+name+", pizza?", r.acc.ID)
	threaded := alice.wait("the reply in the thread", fromWith(r.acc.ID, room, "echo: hey pizza?")).Content.AsMessage()
	t.Run("a mention in a thread is answered in the thread", func(t *testing.T) {
		if got := threaded.RelatesTo.GetThreadParent(); got != root {
			t.Errorf("reply is in thread %q, want %q", got, root)
		}
	})
	inThread("and salad")
	alice.wait("the reply to the thread's next message", fromWith(r.acc.ID, room, "echo: and salad"))
}

func TestDirectChatIsAnsweredWithoutMention(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	bob := newPerson(t, shared, "bob", false)
	room := dm(bob, r, false)
	bob.say(room, "hello bot")
	bob.wait("the reply", fromWith(r.acc.ID, room, "echo: hello bot"))
}

func TestInviteRefusedWhenNoRouteAllowsIt(t *testing.T) {
	r := newRig(t, shared, false)
	allowed := newPerson(t, shared, "allowed", false)
	other := newPerson(t, shared, "other", false)
	r.tweak = func(o *matrix.Config) {
		o.Admit = func(in bridge.Inbound) bool { return in.Sender.ID == string(allowed.cli.UserID) }
	}
	r.start()

	refused := other.createRoom(false, true, r.acc.ID)
	other.wait("the bot rejecting the invite", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.RoomID == refused && evt.GetStateKey() == string(r.acc.ID) &&
			evt.Content.AsMember().Membership == event.MembershipLeave
	})
	room := dm(allowed, r, false)
	allowed.say(room, "let me in")
	allowed.wait("the reply", fromWith(r.acc.ID, room, "echo: let me in"))
}

func TestEncryptedRoomsWorkBothWays(t *testing.T) {
	r := newRig(t, shared, true)
	r.start()
	dave := newPerson(t, shared, "dave", true)
	erin := newPerson(t, shared, "erin", true)

	t.Run("direct chat", func(t *testing.T) {
		room := dm(dave, r, true)
		dave.say(room, "a secret")
		reply := dave.wait("the encrypted reply", fromWith(r.acc.ID, room, "echo: a secret"))
		if reply.Mautrix.EventSource&event.SourceDecrypted == 0 {
			t.Error("the reply was not encrypted")
		}
	})
	t.Run("room", func(t *testing.T) {
		room := dave.createRoom(true, false, r.acc.ID, erin.cli.UserID)
		erin.join(room)
		dave.wait("the bot joining", joined(r.acc.ID, room))
		dave.wait("erin joining", joined(erin.cli.UserID, room))
		dave.say(room, "a shared secret", r.acc.ID)
		for _, p := range []*person{dave, erin} {
			reply := p.wait("the encrypted reply", fromWith(r.acc.ID, room, "echo: a shared secret"))
			stored, err := p.cli.GetEvent(t.Context(), room, reply.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Type != event.EventEncrypted {
				t.Errorf("the homeserver keeps the reply as %s, want %s", stored.Type.Type, event.EventEncrypted.Type)
			}
		}
	})
}

func TestEveryPayloadType(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	alice.say(room, "payloads")
	alice.wait("the bloc's image", func(evt *event.Event) bool {
		return from(r.acc.ID, room)(evt) && evt.Content.AsMessage().MsgType == event.MsgImage && len(alice.seen(from(r.acc.ID, room))) >= 13
	})
	got := alice.seen(from(r.acc.ID, room))
	want := []struct {
		msgType event.MessageType
		check   func(c *event.MessageEventContent) string
	}{
		{event.MsgText, body("plain hello")},
		{event.MsgText, html("<strong>bold</strong>")},
		{event.MsgImage, media("cat.png", "image/png", len(testPNG))},
		{event.MsgAudio, media("song.mp3", "audio/mpeg", len(mediaFiles["/song.mp3"].body))},
		{event.MsgVideo, media("clip.mp4", "video/mp4", len(mediaFiles["/clip.mp4"].body))},
		{event.MsgFile, media("Quarterly report", "application/pdf", len(mediaFiles["/report.pdf"].body))},
		{event.MsgLocation, func(c *event.MessageEventContent) string {
			if c.GeoURI != "geo:48.8584,2.2945" || !strings.Contains(c.Body, "Eiffel Tower") {
				return fmt.Sprintf("geo %q, body %q", c.GeoURI, c.Body)
			}
			return ""
		}},
		{event.MsgText, html(`<strong>Pro plan</strong>`, `<ol start="1"><li>Buy</li></ol>`, `<a href="https://example.com/pro">Details</a>`)},
		{event.MsgText, html(`Red shirt`, `<ol start="1"><li>Pick red</li></ol>`, `<ol start="2"><li>Pick blue</li></ol>`)},
		{event.MsgText, html(`<p>Which size?</p><ol start="1"><li>Small</li><li>Large</li></ol>`)},
		{event.MsgText, body("Pick a country\n  1. France\n  2. Japan\n(answer with a number or a label)")},
		{event.MsgText, body("bloc first")},
		{event.MsgImage, media("cat.png", "image/png", len(testPNG))},
	}
	if len(got) != len(want) {
		for _, evt := range got {
			t.Logf("%s %q", evt.Content.AsMessage().MsgType, evt.Content.AsMessage().Body)
		}
		t.Fatalf("the bot posted %d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		c := got[i].Content.AsMessage()
		if c.MsgType != w.msgType {
			t.Errorf("message %d is %s, want %s", i, c.MsgType, w.msgType)
			continue
		}
		if problem := w.check(c); problem != "" {
			t.Errorf("message %d (%s): %s", i, c.MsgType, problem)
		}
	}
	img := got[2].Content.AsMessage()
	if img.Info.Width != 5 || img.Info.Height != 3 {
		t.Errorf("image size %dx%d, want 5x3", img.Info.Width, img.Info.Height)
	}
}

func body(want string) func(*event.MessageEventContent) string {
	return func(c *event.MessageEventContent) string {
		if !strings.Contains(c.Body, want) {
			return fmt.Sprintf("body %q lacks %q", c.Body, want)
		}
		return ""
	}
}

func html(want ...string) func(*event.MessageEventContent) string {
	return func(c *event.MessageEventContent) string {
		for _, w := range want {
			if c.Format != event.FormatHTML || !strings.Contains(c.FormattedBody, w) {
				return fmt.Sprintf("HTML %q lacks %q", c.FormattedBody, w)
			}
		}
		return ""
	}
}

func media(name, mimeType string, size int) func(*event.MessageEventContent) string {
	return func(c *event.MessageEventContent) string {
		switch {
		case c.Body != name:
			return fmt.Sprintf("body %q, want %q", c.Body, name)
		case c.URL == "":
			return "no mxc URL"
		case c.Info == nil || c.Info.MimeType != mimeType || c.Info.Size != size:
			return fmt.Sprintf("info %+v, want %s of %d bytes", c.Info, mimeType, size)
		}
		return ""
	}
}

func TestChoiceAnsweredByNumberOrLabel(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)

	alice.say(room, "choice")
	alice.wait("the choice", fromWith(r.acc.ID, room, "Which size?"))
	alice.say(room, "2")
	alice.wait("the bot getting the second option's value", fromWith(r.acc.ID, room, "chose: l"))

	alice.say(room, "choice")
	bridgetest.WaitFor(t, "the second choice", func() bool { return len(alice.seen(fromWith(r.acc.ID, room, "Which size?"))) == 2 })
	alice.say(room, "small")
	alice.wait("the bot getting the labelled option's value", fromWith(r.acc.ID, room, "chose: s"))
}

func TestMediaBothWays(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain room", true: "encrypted room"}[encrypted], func(t *testing.T) {
			r := newRig(t, shared, encrypted)
			r.start()
			alice := newPerson(t, shared, "alice", encrypted)
			room := dm(alice, r, encrypted)

			// A person's image reaches the bot as a link it can fetch.
			c := &event.MessageEventContent{MsgType: event.MsgImage, Body: "photo.png",
				Info: &event.FileInfo{MimeType: "image/png", Size: len(testPNG)}}
			data := testPNG
			var file *attachment.EncryptedFile
			if encrypted {
				file = attachment.NewEncryptedFile()
				data = slices.Clone(testPNG)
				file.EncryptInPlace(data)
			}
			up, err := alice.cli.UploadBytes(t.Context(), data, "image/png")
			if err != nil {
				t.Fatal(err)
			}
			if file != nil {
				c.File = &event.EncryptedFileInfo{EncryptedFile: *file, URL: up.ContentURI.CUString()}
			} else {
				c.URL = up.ContentURI.CUString()
			}
			alice.send(room, c)
			alice.wait("the bot fetching the image", fromWith(r.acc.ID, room, fmt.Sprintf("got %d bytes %s", len(testPNG), digest(testPNG))))

			// The bot's image is uploaded to the media repository.
			alice.say(room, "image")
			img := alice.wait("the bot's image", func(evt *event.Event) bool {
				return from(r.acc.ID, room)(evt) && evt.Content.AsMessage().MsgType == event.MsgImage
			}).Content.AsMessage()
			mxc := img.URL
			if encrypted {
				if img.File == nil || img.URL != "" {
					t.Fatalf("image in an encrypted room is not an encrypted file: url %q, file %v", img.URL, img.File)
				}
				mxc = img.File.URL
			}
			uri, err := mxc.Parse()
			if err != nil {
				t.Fatal(err)
			}
			got, err := alice.cli.DownloadBytes(t.Context(), uri)
			if err != nil {
				t.Fatal(err)
			}
			if encrypted {
				if err := img.File.DecryptInPlace(got); err != nil {
					t.Fatal(err)
				}
			}
			if digest(got) != digest(testPNG) {
				t.Errorf("downloaded %d bytes %s, want %d bytes %s", len(got), digest(got), len(testPNG), digest(testPNG))
			}
		})
	}
}

func TestRestartMidConversation(t *testing.T) {
	r := newRig(t, shared, true)
	r.start()
	alice := newPerson(t, shared, "alice", true)
	room := dm(alice, r, true)
	alice.say(room, "one")
	alice.wait("the first reply", fromWith(r.acc.ID, room, "echo: one"))

	r.stop()
	alice.say(room, "two, while the bridge is down")
	r.start()
	alice.wait("the reply to what was said while down", fromWith(r.acc.ID, room, "echo: two, while the bridge is down"))
	alice.say(room, "three")
	alice.wait("the reply after the restart", fromWith(r.acc.ID, room, "echo: three"))

	if got, want := r.bot.texts(), []string{"one", "two, while the bridge is down", "three"}; !slices.Equal(got, want) {
		t.Errorf("the bot got %q, want %q", got, want)
	}
	if n := len(alice.seen(fromWith(r.acc.ID, room, "echo: one"))); n != 1 {
		t.Errorf("the first reply was posted %d times", n)
	}
}

// flakyStore fails storing the first inbound message whose text contains
// its word, as a full disk would.
type flakyStore struct {
	bridge.Store
	word   string
	failed atomic.Bool
}

func (s *flakyStore) EnqueueInbound(ctx context.Context, key bridge.ConvKey, in bridge.Inbound, engage bridge.RoomKey) (bridge.OutboxItem, bool, error) {
	if strings.Contains(in.Text, s.word) && s.failed.CompareAndSwap(false, true) {
		return bridge.OutboxItem{}, false, errors.New("disk full (simulated)")
	}
	return s.Store.EnqueueInbound(ctx, key, in, engage)
}

func TestMessageNotStoredIsDeliveredAgain(t *testing.T) {
	r := newRig(t, shared, false)
	flaky := &flakyStore{word: "flaky"}
	r.wrap = func(s bridge.Store) bridge.Store { flaky.Store = s; return flaky }
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	alice.say(room, "a flaky message")
	alice.wait("the reply", fromWith(r.acc.ID, room, "echo: a flaky message"))
	if !flaky.failed.Load() {
		t.Fatal("the store never failed")
	}
	alice.say(room, "after")
	alice.wait("the next reply", fromWith(r.acc.ID, room, "echo: after"))
	if got, want := r.bot.texts(), []string{"a flaky message", "after"}; !slices.Equal(got, want) {
		t.Errorf("the bot got %q, want %q", got, want)
	}
}

func TestEditsAndStreams(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)

	t.Run("a person's edit reaches the bot marked edited", func(t *testing.T) {
		first := alice.say(room, "first version")
		alice.wait("the reply", fromWith(r.acc.ID, room, "echo: first version"))
		edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "second version"}
		edit.SetEdit(first)
		alice.send(room, edit)
		alice.wait("the reply to the edit", fromWith(r.acc.ID, room, "edited: second version"))
	})
	t.Run("a streamed reply is one message, edited as it grows", func(t *testing.T) {
		alice.say(room, "stream")
		final := "This reply grows word by word."
		var seen []string
		bridgetest.WaitFor(t, "the streamed reply to be complete", func() bool {
			msgs, err := seenBy(t.Context(), alice.cli, room, r.acc.ID)
			if err != nil {
				t.Fatal(err)
			}
			seen = seen[:0]
			for _, m := range msgs {
				seen = append(seen, m.Text)
			}
			// While it grows the message ends with " …"; the final edit drops it.
			return slices.Contains(seen, final)
		})
		if n := len(slices.DeleteFunc(seen, func(s string) bool { return !strings.HasPrefix(s, "This") })); n != 1 {
			t.Errorf("the streamed reply shows as %d messages", n)
		}
		history, err := alice.cli.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		edits := slices.DeleteFunc(history.Chunk, func(evt *event.Event) bool {
			_ = evt.Content.ParseRaw(event.EventMessage)
			return evt.Sender != r.acc.ID || evt.Content.AsMessage().RelatesTo.GetReplaceID() == ""
		})
		if len(edits) == 0 {
			t.Error("the reply was not edited")
		}
	})
}

func TestTypingAndReadReceipts(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	asked := alice.say(room, "slow")
	alice.wait("the bot typing", func(evt *event.Event) bool {
		return evt.Type == event.EphemeralEventTyping && evt.RoomID == room && slices.Contains(evt.Content.AsTyping().UserIDs, r.acc.ID)
	})
	alice.wait("the bot's read receipt", func(evt *event.Event) bool {
		if evt.Type != event.EphemeralEventReceipt || evt.RoomID != room {
			return false
		}
		_, ok := (*evt.Content.AsReceipt())[asked][event.ReceiptTypeRead][r.acc.ID]
		return ok
	})
	close(r.bot.release)
	reply := alice.wait("the reply", fromWith(r.acc.ID, room, "echo: slow"))
	alice.wait("the typing to stop", func(evt *event.Event) bool {
		return evt.Type == event.EphemeralEventTyping && evt.RoomID == room && !slices.Contains(evt.Content.AsTyping().UserIDs, r.acc.ID) &&
			len(alice.seen(func(e *event.Event) bool { return e.ID == reply.ID })) > 0
	})
}

func TestKickedBotPostsAgainOnceInvitedBack(t *testing.T) {
	r := newRig(t, shared, false)
	alice := newPerson(t, shared, "alice", false)
	r.tweak = func(o *matrix.Config) {
		o.Admit = func(in bridge.Inbound) bool { return in.Sender.ID == string(alice.cli.UserID) }
	}
	r.start()
	room := dm(alice, r, false)
	alice.say(room, "hi")
	alice.wait("the reply", fromWith(r.acc.ID, room, "echo: hi"))
	if _, err := alice.cli.KickUser(t.Context(), room, &mautrix.ReqKickUser{UserID: r.acc.ID, Reason: "too chatty"}); err != nil {
		t.Fatal(err)
	}
	key := bridge.RoomKey{Platform: matrix.Platform, Room: string(room)}
	_, err := r.ad.Send(t.Context(), bridge.Outbound{ID: "after-kick", Room: key, Payload: chat.Text{Text: "still here?"}})
	t.Run("after a kick, posts fail for lack of access", func(t *testing.T) {
		if !errors.Is(err, bridge.ErrNoAccess) || bridge.IsPermanent(err) || !strings.Contains(err.Error(), "no longer in the room") {
			t.Errorf("Send after a kick: %v; want an error of bridge.ErrNoAccess, not permanent, saying the bot is no longer in the room", err)
		}
	})

	retryServer(t, shared, "invite the bot again", func() error {
		_, err := alice.cli.InviteUser(t.Context(), room, &mautrix.ReqInviteUser{UserID: r.acc.ID})
		return err
	})
	bridgetest.WaitFor(t, "the bot to join again", func() bool { return len(alice.seen(joined(r.acc.ID, room))) == 2 })
	t.Run("invited back, it posts again", func(t *testing.T) {
		posted, err := r.ad.Send(t.Context(), bridge.Outbound{ID: "after-invite", Room: key, Payload: chat.Text{Text: "back again"}})
		if err != nil {
			t.Fatalf("Send after the invite: %v", err)
		}
		alice.wait("the post", func(evt *event.Event) bool { return evt.ID == id.EventID(posted.First()) })
	})
}

func TestBotMediaOnPrivateAddressesIsOnlyLinked(t *testing.T) {
	r := newRig(t, shared, false)
	r.tweak = func(o *matrix.Config) { o.AllowPrivateURLs = false }
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	alice.say(room, "image")
	got := alice.wait("the bot's image", fromWith(r.acc.ID, room, "/cat.png")).Content.AsMessage()
	if got.MsgType != event.MsgText || got.URL != "" || got.Body != "[image] "+r.bot.media+"/cat.png" {
		t.Errorf("the bot's image from a loopback address was posted as %s %q (url %q); want its link as text", got.MsgType, got.Body, got.URL)
	}
}

func TestDeleteRedactsThePost(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	key := bridge.RoomKey{Platform: matrix.Platform, Room: string(room)}
	posted, err := r.ad.Send(t.Context(), bridge.Outbound{ID: "to-delete", Room: key, Payload: chat.Text{Text: "soon gone"}})
	if err != nil {
		t.Fatal(err)
	}
	alice.wait("the post", fromWith(r.acc.ID, room, "soon gone"))
	if err := r.ad.Delete(t.Context(), key, posted); err != nil {
		t.Fatal(err)
	}
	// The homeserver applies a redaction shortly after accepting it.
	bridgetest.WaitFor(t, "the post to be redacted", func() bool {
		evt, err := alice.cli.GetEvent(t.Context(), room, id.EventID(posted.First()))
		if err != nil {
			t.Fatal(err)
		}
		return evt.Unsigned.RedactedBecause != nil && len(evt.Content.Raw) == 0
	})
}
