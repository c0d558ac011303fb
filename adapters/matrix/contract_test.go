package matrix_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
)

func TestContract(t *testing.T) {
	acc := newAccount(t, shared, "contractbot")
	someone := newPerson(t, shared, "alice", false)
	alice := someone.cli
	roomID := someone.createRoom(false, false, acc.ID)
	botCli, err := mautrix.NewClient(shared.URL, acc.ID, acc.Token)
	if err != nil {
		t.Fatal(err)
	}
	(&person{t: t, hs: shared, cli: botCli}).join(roomID)
	room := bridge.RoomKey{Platform: matrix.Platform, Room: string(roomID)}

	bridgetest.RunAdapterContract(t, bridgetest.Harness{
		New: func(t *testing.T) bridge.Adapter {
			st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
			opts := options(t, shared, acc, st, db)
			opts.Password, opts.AccessToken = "", acc.Token
			a, err := matrix.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Room: room,
		Say: func(ctx context.Context, room bridge.RoomKey, text string) (string, error) {
			c := &event.MessageEventContent{MsgType: event.MsgText, Body: text}
			if room.Thread != "" {
				c.RelatesTo = (&event.RelatesTo{}).SetThread(id.EventID(room.Thread), id.EventID(room.Thread))
			}
			resp, err := alice.SendMessageEvent(ctx, id.RoomID(room.Room), event.EventMessage, c)
			if err != nil {
				return "", err
			}
			return string(resp.EventID), nil
		},
		Seen: func(ctx context.Context, room bridge.RoomKey) ([]bridgetest.Seen, error) {
			if err := caughtUp(ctx, alice, id.RoomID(room.Room)); err != nil {
				return nil, err
			}
			return seenBy(ctx, alice, id.RoomID(room.Room), acc.ID)
		},
		Redelivers: true,
	})
}

// markerType is an event type of the tests' own, which the adapter ignores.
var markerType = event.Type{Type: "org.botbridge.test.marker", Class: event.MessageEventType}

// caughtUp returns once /messages shows what was sent to room before it was
// called: Dendrite serves /messages from its sync API, which learns of new
// events shortly after they are sent. It sends a marker event and waits for
// it, as the room's events reach the sync API in order.
func caughtUp(ctx context.Context, cli *mautrix.Client, room id.RoomID) error {
	sent, err := cli.SendMessageEvent(ctx, room, markerType, map[string]any{})
	if err != nil {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 20)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(resp.Chunk, func(evt *event.Event) bool { return evt.ID == sent.EventID }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// seenBy reads the messages of sender in room as cli sees them, oldest
// first, with edits applied.
func seenBy(ctx context.Context, cli *mautrix.Client, room id.RoomID, sender id.UserID) ([]bridgetest.Seen, error) {
	resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 1000)
	if err != nil {
		return nil, err
	}
	var out []bridgetest.Seen
	edits := map[id.EventID]*event.MessageEventContent{}
	for _, evt := range slices.Backward(resp.Chunk) {
		if evt.Sender != sender || evt.Type.Type != event.EventMessage.Type {
			continue
		}
		_ = evt.Content.ParseRaw(event.EventMessage)
		c := evt.Content.AsMessage()
		if orig := c.RelatesTo.GetReplaceID(); orig != "" && c.NewContent != nil {
			edits[orig] = c.NewContent
			continue
		}
		out = append(out, bridgetest.Seen{ID: string(evt.ID), Thread: string(c.RelatesTo.GetThreadParent()), Text: visible(c)})
	}
	for i, s := range out {
		if c := edits[id.EventID(s.ID)]; c != nil {
			out[i].Text = visible(c)
		}
	}
	return out, nil
}

// visible is what a person can read in a message: its body, its HTML, and
// for media the file's address.
func visible(c *event.MessageEventContent) string {
	parts := []string{c.Body, c.FormattedBody, c.FileName, c.GeoURI, string(c.URL)}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), "\n")
}
