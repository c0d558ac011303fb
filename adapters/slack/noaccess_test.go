package slack_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// wantNoAccess checks that err is Slack's code, marked as a refusal of the
// bot in the room: neither permanent nor a plain transient error.
func wantNoAccess(t *testing.T, err error, code string) {
	t.Helper()
	var ae *slack.APIError
	if !errors.Is(err, bridge.ErrNoAccess) || bridge.IsPermanent(err) || !errors.As(err, &ae) || ae.Code != code {
		t.Errorf("Send: %v; want %s marked bridge.NoAccess", err, code)
	}
}

func TestNoAccess(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	const team, closed = "C0TEAM", "G0CLOSED"
	fake.AddChannel(slacktest.Channel{ID: team, Name: "team", Members: []string{alice}, IsMember: true})
	fake.AddChannel(slacktest.Channel{ID: closed, Name: "closed", Type: slacktest.Private, Members: []string{alice}, IsMember: true})
	bot := fake.Options().BotUserID
	a := newAdapter(t, fake, nil)
	run(t, a, nopHandler())
	waitReady(t, a, "nil", func(err error) bool { return err == nil })
	n := 0
	send := func(t *testing.T, channel string, p chat.Payload) (bridge.Parts, error) {
		t.Helper()
		n++
		return a.Send(waitCtx(t), bridge.Outbound{ID: chat.MessageID(fmt.Sprint("m", n)), Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: channel},
			Payload: p, Time: time.Now()})
	}
	hi := chat.Text{Text: "hi"}
	// must fails t when the fake refuses a change of the channel.
	must := func(t *testing.T) func(slacktest.Message, error) {
		return func(_ slacktest.Message, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("a bot removed from a public channel is refused, and posts again once invited back", func(t *testing.T) {
		must(t)(fake.LeaveChannel(team, bot))
		_, err := send(t, team, hi)
		wantNoAccess(t, err, "not_in_channel")
		must(t)(fake.JoinChannel(team, bot))
		if _, err := send(t, team, hi); err != nil {
			t.Fatal(err)
		}
		waitReady(t, a, "nil once the bot posts there again", func(err error) bool { return err == nil })
	})
	t.Run("a bot removed from a private channel is refused, and posts again once invited back", func(t *testing.T) {
		must(t)(fake.LeaveChannel(closed, bot))
		_, err := send(t, closed, hi)
		wantNoAccess(t, err, "channel_not_found")
		must(t)(fake.JoinChannel(closed, bot))
		if _, err := send(t, closed, hi); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an archived channel is refused until it is unarchived and the bot invited back", func(t *testing.T) {
		must(t)(fake.ArchiveChannel(team, alice))
		_, err := send(t, team, hi)
		wantNoAccess(t, err, "is_archived")
		must(t)(fake.UnarchiveChannel(team, alice))
		_, err = send(t, team, hi)
		wantNoAccess(t, err, "not_in_channel")
		must(t)(fake.JoinChannel(team, bot))
		if _, err := send(t, team, hi); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a file is refused the same way, and shared once the bot is back", func(t *testing.T) {
		file := chat.File{FileURL: fileServer(t).URL + "/report.pdf", Title: "Report"}
		must(t)(fake.LeaveChannel(team, bot))
		_, err := send(t, team, file)
		wantNoAccess(t, err, "not_in_channel")
		must(t)(fake.JoinChannel(team, bot))
		ids, err := send(t, team, file)
		if err != nil || !ids.Complete() {
			t.Fatalf("Send = %q, %v", ids, err)
		}
	})
	t.Run("a reply cut off by a removal keeps the parts already posted", func(t *testing.T) {
		out := bridge.Outbound{ID: "m-long", Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: team}, Payload: chat.Text{Text: longText()}, Time: time.Now()}
		first, err := a.Send(waitCtx(t), out)
		if err != nil || len(first) != 2 {
			t.Fatalf("Send = %q, %v", first, err)
		}
		// As if the bot had been removed between the two parts.
		if _, err := fake.DeleteMessage(team, first[1]); err != nil {
			t.Fatal(err)
		}
		must(t)(fake.LeaveChannel(team, bot))
		out.Posted = bridge.Parts{first[0], ""}
		got, err := a.Send(waitCtx(t), out)
		wantNoAccess(t, err, "not_in_channel")
		if len(got) != 2 || got[0] != first[0] || got[1] != "" {
			t.Errorf("parts %q, want the first kept and the second missing", got)
		}
		must(t)(fake.JoinChannel(team, bot))
	})
	t.Run("a channel that never existed is refused as one the bot cannot see", func(t *testing.T) {
		_, err := send(t, "C0NOWHERE", hi)
		wantNoAccess(t, err, "channel_not_found")
	})
	t.Run("other refusals of the channel's settings are marked no access", func(t *testing.T) {
		for _, code := range []string{"restricted_action", "restricted_action_read_only_channel", "restricted_action_thread_locked", "ekm_access_denied"} {
			fake.FailMethod("chat.postMessage", code, 1)
			_, err := send(t, team, hi)
			wantNoAccess(t, err, code)
		}
	})
	t.Run("refusals of the message itself stay permanent", func(t *testing.T) {
		for _, code := range []string{"invalid_blocks", "msg_too_long", "msg_blocks_too_long", "no_text", "restricted_action_thread_only_channel"} {
			fake.FailMethod("chat.postMessage", code, 1)
			_, err := send(t, team, hi)
			if !bridge.IsPermanent(err) || errors.Is(err, bridge.ErrNoAccess) {
				t.Errorf("%s: Send: %v; want permanent", code, err)
			}
		}
	})
}
