package matrix_test

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
)

// upgrade upgrades room as the person's client does when asked to (a new
// room of the same version), and invites the users given to the new room,
// as Element offers to. It returns the new room.
func (p *person) upgrade(room id.RoomID, invite ...id.UserID) id.RoomID {
	p.t.Helper()
	var resp struct {
		Replacement id.RoomID `json:"replacement_room"`
	}
	var create event.CreateEventContent
	retryServer(p.t, p.hs, "read the room's version", func() error {
		return p.cli.StateEvent(p.t.Context(), room, event.StateCreate, "", &create)
	})
	version := create.RoomVersion
	if version == "" {
		version = "1"
	}
	retryServer(p.t, p.hs, "upgrade the room", func() error {
		_, err := p.cli.MakeRequest(p.t.Context(), http.MethodPost, p.cli.BuildClientURL("v3", "rooms", room, "upgrade"),
			map[string]any{"new_version": version}, &resp)
		return err
	})
	for _, u := range invite {
		retryServer(p.t, p.hs, "invite to the new room", func() error {
			_, err := p.cli.InviteUser(p.t.Context(), resp.Replacement, &mautrix.ReqInviteUser{UserID: u})
			return err
		})
	}
	return resp.Replacement
}

func TestRoomUpgradeCarriesTheConversationOn(t *testing.T) {
	r := newRig(t, shared, false)
	logs := newLogRecorder(testLogger(t).Handler())
	alice := newPerson(t, shared, "alice", false)
	carol := newPerson(t, shared, "carol", false)
	var kept atomic.Pointer[id.RoomID]
	kept.Store(new(id.RoomID))
	r.tweak = func(o *matrix.Config) {
		o.Logger = slog.New(logs)
		// carol may use the bot in the room she makes, and nowhere else.
		o.Admit = func(in bridge.Inbound) bool {
			return in.Sender.ID != string(carol.cli.UserID) || in.Room.Room == string(*kept.Load())
		}
	}
	r.start()

	t.Run("the bot follows to the new room and the same Botpress conversation goes on", func(t *testing.T) {
		room := alice.createRoom(false, false, r.acc.ID)
		alice.wait("the bot joining", joined(r.acc.ID, room))
		alice.say(room, "before the upgrade")
		alice.wait("the answer in the old room", fromWith(r.acc.ID, room, "echo: before the upgrade"))

		next := alice.upgrade(room, r.acc.ID)
		alice.wait("the bot joining the new room", joined(r.acc.ID, next))
		alice.say(next, "after the upgrade")
		alice.wait("the answer in the new room", fromWith(r.acc.ID, next, "echo: after the upgrade"))

		convs := map[string]chat.ConversationID{}
		for _, m := range r.bot.messages() {
			if p, ok := m.Payload.(chat.Text); ok {
				convs[p.Text] = m.ConversationID
			}
		}
		before, after := convs["before the upgrade"], convs["after the upgrade"]
		if before == "" || before != after {
			t.Errorf("Botpress conversation before the upgrade %q, after %q; want the same", before, after)
		}
		if len(logs.lines("followed a room upgrade")) == 0 {
			t.Error("the bot did not log that it followed the upgrade")
		}
	})

	t.Run("the bot joins a public new room without an invite", func(t *testing.T) {
		room := alice.create(&mautrix.ReqCreateRoom{Preset: "public_chat", Invite: []id.UserID{r.acc.ID}})
		alice.wait("the bot joining", joined(r.acc.ID, room))
		next := alice.upgrade(room)
		alice.wait("the bot joining the new room by itself", joined(r.acc.ID, next))
	})

	t.Run("the bot stays behind when no route lets the upgrader in the new room", func(t *testing.T) {
		// The room's id is known once it exists, before anyone invites the bot.
		room := carol.create(&mautrix.ReqCreateRoom{Preset: "private_chat"})
		kept.Store(&room)
		retryServer(t, shared, "invite the bot", func() error {
			_, err := carol.cli.InviteUser(t.Context(), room, &mautrix.ReqInviteUser{UserID: r.acc.ID})
			return err
		})
		carol.wait("the bot joining", joined(r.acc.ID, room))
		next := carol.upgrade(room, r.acc.ID)
		carol.wait("the bot rejecting the invite to the new room", func(evt *event.Event) bool {
			return evt.Type == event.StateMember && evt.RoomID == next && evt.GetStateKey() == string(r.acc.ID) &&
				evt.Content.AsMember().Membership == event.MembershipLeave
		})
		bridgetest.WaitFor(t, "the bot to log that it stays", func() bool { return len(logs.lines("the bot stays behind")) > 0 })
	})
}
