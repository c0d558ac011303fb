package slacktest_test

import (
	"testing"

	"github.com/slack-go/slack"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

func TestMembership(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	api := newAPI(fake)
	bot := fake.Options().BotUserID
	fake.AddChannel(slacktest.Channel{ID: "G0CLOSED", Name: "closed", Type: slacktest.Private, Members: []string{alice}, IsMember: true})
	post := func(channel string) error {
		_, _, err := api.PostMessageContext(t.Context(), channel, slack.MsgOptionText("hi", false))
		return err
	}
	change := func(t *testing.T, what string, m slacktest.Message, err error, subtype string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if m.Subtype != subtype || fake.Snapshot().Message(m.Channel, m.TS) == nil {
			t.Errorf("%s recorded %+v, want a %s message", what, m, subtype)
		}
	}
	t.Run("a bot removed from a public channel gets not_in_channel, and posts again once invited", func(t *testing.T) {
		m, err := fake.LeaveChannel(general, bot)
		change(t, "leave", m, err, "channel_leave")
		wantSlackErr(t, post(general), "not_in_channel")
		m, err = fake.JoinChannel(general, bot)
		change(t, "join", m, err, "channel_join")
		if err := post(general); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a bot removed from a private channel gets channel_not_found", func(t *testing.T) {
		if _, err := fake.LeaveChannel("G0CLOSED", bot); err != nil {
			t.Fatal(err)
		}
		wantSlackErr(t, post("G0CLOSED"), "channel_not_found")
		if _, err := fake.JoinChannel("G0CLOSED", bot); err != nil {
			t.Fatal(err)
		}
		if err := post("G0CLOSED"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("archiving removes the bot; unarchiving does not bring it back", func(t *testing.T) {
		m, err := fake.ArchiveChannel(general, alice)
		change(t, "archive", m, err, "channel_archive")
		wantSlackErr(t, post(general), "is_archived")
		info, err := api.GetConversationInfoContext(t.Context(), &slack.GetConversationInfoInput{ChannelID: general})
		if err != nil || !info.IsArchived || info.IsMember {
			t.Errorf("conversations.info = %+v, %v; want archived, the bot not a member", info, err)
		}
		if _, err := fake.JoinChannel(general, bot); err == nil {
			t.Error("the bot joined an archived channel")
		}
		m, err = fake.UnarchiveChannel(general, alice)
		change(t, "unarchive", m, err, "channel_unarchive")
		wantSlackErr(t, post(general), "not_in_channel")
		if _, err := fake.JoinChannel(general, bot); err != nil {
			t.Fatal(err)
		}
		if err := post(general); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a DM has no members to change", func(t *testing.T) {
		if _, err := fake.LeaveChannel(dm, bot); err == nil {
			t.Error("the bot left a DM")
		}
		if _, err := fake.ArchiveChannel(dm, alice); err == nil {
			t.Error("a DM was archived")
		}
	})
}
