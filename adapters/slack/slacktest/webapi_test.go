package slacktest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

// slackErr returns the Slack error code of err, or fails the test.
func slackErr(t *testing.T, err error) slack.SlackErrorResponse {
	t.Helper()
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a Slack error answer", err, err)
	}
	return se
}

func wantSlackErr(t *testing.T, err error, code string) {
	t.Helper()
	if got := slackErr(t, err).Err; got != code {
		t.Errorf("error = %s, want %s", got, code)
	}
}

// rawCall posts to a Web API method without slack-go and decodes the answer.
func rawCall(t *testing.T, fake *slacktest.Server, method, contentType, token string, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fake.APIURL()+method, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestIdentity(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	api := newAPI(fake)
	ctx := t.Context()

	t.Run("auth.test answers the bot's identity", func(t *testing.T) {
		r, err := api.AuthTestContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.UserID != slacktest.DefaultBotUserID || r.BotID != slacktest.DefaultBotID || r.TeamID != slacktest.DefaultTeamID || r.User != slacktest.DefaultBotName {
			t.Errorf("auth.test = %+v", r)
		}
	})
	t.Run("users.info answers a person", func(t *testing.T) {
		u, err := api.GetUserInfoContext(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != alice || u.Name != "alice" || u.RealName != "Alice Liddell" || u.IsBot || u.TZ != "Europe/Paris" ||
			u.Profile.DisplayName != "ali" || u.Profile.Image72 != "https://avatars.example.com/alice.png" || u.Profile.FirstName != "Alice" {
			t.Errorf("user = %+v", u)
		}
		if u.Profile.Email != "" {
			t.Errorf("email %q shown without users:read.email", u.Profile.Email)
		}
	})
	t.Run("users.info answers the bot", func(t *testing.T) {
		u, err := api.GetUserInfoContext(ctx, slacktest.DefaultBotUserID)
		if err != nil {
			t.Fatal(err)
		}
		if !u.IsBot || u.Profile.BotID != slacktest.DefaultBotID || u.Profile.ApiAppID != slacktest.DefaultAppID {
			t.Errorf("bot user = %+v", u)
		}
	})
	t.Run("users.info of an unknown user fails with user_not_found", func(t *testing.T) {
		_, err := api.GetUserInfoContext(ctx, "U0NOBODY")
		wantSlackErr(t, err, "user_not_found")
	})
	t.Run("conversations.info answers channels and DMs", func(t *testing.T) {
		c, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: general, IncludeNumMembers: true})
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != "general" || !c.IsChannel || !c.IsMember || c.IsPrivate || c.NumMembers != 3 {
			t.Errorf("general = %+v", c)
		}
		d, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: dm})
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsIM || d.User != alice {
			t.Errorf("dm = %+v", d)
		}
	})
	t.Run("conversations.info of a private channel without the bot fails with channel_not_found", func(t *testing.T) {
		_, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: secret})
		wantSlackErr(t, err, "channel_not_found")
	})
	t.Run("conversations.members pages with cursors", func(t *testing.T) {
		var all []string
		cursor := ""
		for range 5 {
			members, next, err := api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: general, Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, members...)
			if cursor = next; cursor == "" {
				break
			}
		}
		if want := []string{alice, bob, slacktest.DefaultBotUserID}; !slices.Equal(all, want) {
			t.Errorf("members = %v, want %v", all, want)
		}
	})
}

func TestAuth(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	ctx := t.Context()

	t.Run("a wrong token fails with invalid_auth", func(t *testing.T) {
		_, err := slack.New("xoxb-wrong", slack.OptionAPIURL(fake.APIURL())).AuthTestContext(ctx)
		wantSlackErr(t, err, "invalid_auth")
	})
	t.Run("no token fails with not_authed", func(t *testing.T) {
		_, body := rawCall(t, fake, "auth.test", "application/x-www-form-urlencoded", "", "")
		if body["ok"] != false || body["error"] != "not_authed" {
			t.Errorf("answer = %v", body)
		}
	})
	t.Run("the app token is refused outside apps.connections.open", func(t *testing.T) {
		_, body := rawCall(t, fake, "auth.test", "application/x-www-form-urlencoded", fake.Options().AppToken, "")
		if body["error"] != "not_allowed_token_type" {
			t.Errorf("answer = %v", body)
		}
	})
	t.Run("apps.connections.open refuses the bot token", func(t *testing.T) {
		api := slack.New(fake.Options().BotToken, slack.OptionAppLevelToken(fake.Options().BotToken), slack.OptionAPIURL(fake.APIURL()))
		_, _, err := api.StartSocketModeContext(ctx)
		wantSlackErr(t, err, "not_allowed_token_type")
	})
	t.Run("an unknown method fails with unknown_method", func(t *testing.T) {
		_, body := rawCall(t, fake, "chat.fly", "application/x-www-form-urlencoded", fake.Options().BotToken, "")
		if body["ok"] != false || body["error"] != "unknown_method" {
			t.Errorf("answer = %v", body)
		}
	})
	t.Run("a JSON body with a bearer token is accepted", func(t *testing.T) {
		status, body := rawCall(t, fake, "chat.postMessage", "application/json; charset=utf-8", fake.Options().BotToken,
			`{"channel":"`+general+`","text":"from json","blocks":[{"type":"divider","block_id":"d1"}],"unfurl_links":false}`)
		if status != http.StatusOK || body["ok"] != true {
			t.Fatalf("answer %d %v", status, body)
		}
		st := fake.Snapshot()
		m := st.Message(general, body["ts"].(string))
		if m == nil || m.Text != "from json" || string(m.Blocks) != `[{"type":"divider","block_id":"d1"}]` || m.UnfurlLinks == nil || *m.UnfurlLinks {
			t.Errorf("message = %+v", m)
		}
		if c := st.CallsTo("chat.postMessage"); len(c) != 1 || !c[0].JSON || c[0].Args.Get("channel") != general {
			t.Errorf("calls = %+v", c)
		}
	})
	t.Run("the token of a JSON body is not read", func(t *testing.T) {
		_, body := rawCall(t, fake, "auth.test", "application/json", "", `{"token":"`+fake.Options().BotToken+`"}`)
		if body["error"] != "not_authed" {
			t.Errorf("answer = %v", body)
		}
	})
}

func TestFaults(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	api := newAPI(fake)
	ctx := t.Context()

	t.Run("a rate limit surfaces as RateLimitedError with Retry-After", func(t *testing.T) {
		fake.RateLimit("chat.postMessage", 1, 2500*time.Millisecond)
		_, _, err := api.PostMessageContext(ctx, general, slack.MsgOptionText("hi", false))
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
			t.Fatalf("err = %v", err)
		}
		if _, _, err := api.PostMessageContext(ctx, general, slack.MsgOptionText("hi", false)); err != nil {
			t.Fatalf("after the limit: %v", err)
		}
		calls := fake.Snapshot().CallsTo("chat.postMessage")
		if len(calls) != 2 || calls[0].Status != http.StatusTooManyRequests || calls[0].Error != "ratelimited" || calls[1].Status != http.StatusOK {
			t.Errorf("calls = %+v", calls)
		}
	})
	t.Run("a rate limit answers Slack's body", func(t *testing.T) {
		fake.RateLimit("auth.test", 1, time.Second)
		status, body := rawCall(t, fake, "auth.test", "application/x-www-form-urlencoded", fake.Options().BotToken, "")
		if status != http.StatusTooManyRequests || body["ok"] != false || body["error"] != "ratelimited" {
			t.Errorf("answer %d %v", status, body)
		}
	})
	t.Run("a failed method answers the error n times", func(t *testing.T) {
		fake.FailMethod("users.info", "fatal_error", 2)
		for range 2 {
			_, err := api.GetUserInfoContext(ctx, alice)
			wantSlackErr(t, err, "fatal_error")
		}
		if _, err := api.GetUserInfoContext(ctx, alice); err != nil {
			t.Errorf("third call: %v", err)
		}
	})
	t.Run("an injected missing_scope names the scope", func(t *testing.T) {
		fake.FailMethod("reactions.add", "missing_scope", 1)
		err := api.AddReactionContext(ctx, "eyes", slack.NewRefToMessage(general, "1.000001"))
		se := slackErr(t, err)
		if se.Err != "missing_scope" || se.Needed != "reactions:write" || !strings.Contains(se.Provided, "chat:write") {
			t.Errorf("error = %+v", se)
		}
	})
}

func TestScopes(t *testing.T) {
	fake := newFake(t, slacktest.Options{Scopes: []string{"users:read", "channels:read"}})
	api := newAPI(fake)

	t.Run("a method without its scope fails with missing_scope", func(t *testing.T) {
		_, _, err := api.PostMessageContext(t.Context(), general, slack.MsgOptionText("hi", false))
		se := slackErr(t, err)
		if se.Err != "missing_scope" || se.Needed != "chat:write" || se.Provided != "users:read,channels:read" {
			t.Errorf("error = %+v", se)
		}
	})
	t.Run("the needed scope depends on the conversation", func(t *testing.T) {
		_, err := api.GetConversationInfoContext(t.Context(), &slack.GetConversationInfoInput{ChannelID: dm})
		if se := slackErr(t, err); se.Needed != "im:read" {
			t.Errorf("error = %+v", se)
		}
	})
	t.Run("a method with its scope works", func(t *testing.T) {
		if _, err := api.GetUserInfoContext(t.Context(), alice); err != nil {
			t.Error(err)
		}
	})
	t.Run("files cannot be downloaded without files:read", func(t *testing.T) {
		f := fake.AddFile(slacktest.File{Name: "a.txt", User: alice, Content: []byte("a")})
		var got bytesWriter
		if err := api.GetFileContext(t.Context(), f.URLPrivate, &got); err == nil || !strings.Contains(err.Error(), "sign-in") {
			t.Errorf("download: %q, %v", got, err)
		}
	})
}

func TestMessages(t *testing.T) {
	clk := newClock()
	fake := newFake(t, slacktest.Options{Now: clk.Now})
	api := newAPI(fake)
	ctx := t.Context()

	var parentTS string
	t.Run("chat.postMessage records text, blocks, metadata and flags", func(t *testing.T) {
		ch, ts, msg, err := api.PostMessageWithResponseContext(ctx, general,
			slack.MsgOptionText("Hello *world*", false),
			slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Hello *world*", false, false), nil, nil)),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "botbridge_reply", EventPayload: map[string]any{"message_id": "m1"}}),
			slack.MsgOptionDisableLinkUnfurl(),
		)
		if err != nil {
			t.Fatal(err)
		}
		if ch != general || ts == "" || msg.Timestamp != ts || msg.BotID != slacktest.DefaultBotID || msg.User != slacktest.DefaultBotUserID ||
			msg.Text != "Hello *world*" || len(msg.Blocks.BlockSet) != 1 || msg.Metadata.EventType != "botbridge_reply" {
			t.Errorf("answer %s %s %+v", ch, ts, msg)
		}
		parentTS = ts
		m := fake.Snapshot().Message(general, ts)
		if m == nil {
			t.Fatal("message not recorded")
		}
		var blocks []map[string]any
		if err := json.Unmarshal(m.Blocks, &blocks); err != nil || len(blocks) != 1 || blocks[0]["type"] != "section" || blocks[0]["block_id"] == "" {
			t.Errorf("blocks = %s", m.Blocks)
		}
		if !strings.Contains(string(m.Metadata), `"message_id":"m1"`) || m.UnfurlLinks == nil || *m.UnfurlLinks || m.UnfurlMedia != nil {
			t.Errorf("message = %+v", m)
		}
	})
	t.Run("a reply joins the thread and replies list it", func(t *testing.T) {
		_, ts, msg, err := api.PostMessageWithResponseContext(ctx, general, slack.MsgOptionText("in thread", false), slack.MsgOptionTS(parentTS))
		if err != nil {
			t.Fatal(err)
		}
		if msg.ThreadTimestamp != parentTS {
			t.Errorf("reply thread_ts = %q", msg.ThreadTimestamp)
		}
		msgs, hasMore, _, err := api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: general, Timestamp: parentTS})
		if err != nil {
			t.Fatal(err)
		}
		if hasMore || len(msgs) != 2 || msgs[0].Timestamp != parentTS || msgs[0].ReplyCount != 1 || msgs[1].Timestamp != ts || msgs[1].ThreadTimestamp != parentTS {
			t.Errorf("replies = %+v", msgs)
		}
		if msgs[0].Metadata.EventType != "" {
			t.Errorf("metadata shown without include_all_metadata: %+v", msgs[0].Metadata)
		}
	})
	t.Run("a reply to a missing parent is posted in the channel", func(t *testing.T) {
		_, _, msg, err := api.PostMessageWithResponseContext(ctx, general, slack.MsgOptionText("orphan", false), slack.MsgOptionTS("1234567890.000100"))
		if err != nil {
			t.Fatal(err)
		}
		if msg.ThreadTimestamp != "" {
			t.Errorf("thread_ts = %q", msg.ThreadTimestamp)
		}
	})
	t.Run("posting fails as on Slack", func(t *testing.T) {
		_, _, err := api.PostMessageContext(ctx, random, slack.MsgOptionText("hi", false))
		wantSlackErr(t, err, "not_in_channel")
		_, _, err = api.PostMessageContext(ctx, secret, slack.MsgOptionText("hi", false))
		wantSlackErr(t, err, "channel_not_found")
		_, _, err = api.PostMessageContext(ctx, general)
		wantSlackErr(t, err, "no_text")
		_, _, err = api.PostMessageContext(ctx, general, slack.MsgOptionText(strings.Repeat("x", 40001), false))
		wantSlackErr(t, err, "msg_too_long")
	})
	t.Run("a DM can be addressed by user id", func(t *testing.T) {
		ch, _, err := api.PostMessageContext(ctx, alice, slack.MsgOptionText("psst", false))
		if err != nil || ch != dm {
			t.Errorf("channel %q, %v", ch, err)
		}
	})
	t.Run("chat.update records the edit", func(t *testing.T) {
		_, _, _, err := api.UpdateMessageContext(ctx, general, parentTS, slack.MsgOptionText("Hello again", false), slack.MsgOptionBlocks())
		if err != nil {
			t.Fatal(err)
		}
		m := fake.Snapshot().Message(general, parentTS)
		if m.Text != "Hello again" || string(m.Blocks) != "[]" || len(m.Updates) != 1 || m.Updates[0].Text != "Hello again" || m.Updates[0].TS == "" {
			t.Errorf("message = %+v", m)
		}
		if !strings.Contains(string(m.Metadata), "m1") {
			t.Errorf("metadata lost: %s", m.Metadata)
		}
	})
	t.Run("a person's message cannot be updated or deleted", func(t *testing.T) {
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "mine"})
		_, _, _, err := api.UpdateMessageContext(ctx, general, m.TS, slack.MsgOptionText("hacked", false))
		wantSlackErr(t, err, "cant_update_message")
		_, _, err = api.DeleteMessageContext(ctx, general, m.TS)
		wantSlackErr(t, err, "cant_delete_message")
	})
	t.Run("chat.delete removes the message from history", func(t *testing.T) {
		_, ts, err := api.PostMessageContext(ctx, general, slack.MsgOptionText("oops", false))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := api.DeleteMessageContext(ctx, general, ts); err != nil {
			t.Fatal(err)
		}
		if m := fake.Snapshot().Message(general, ts); m == nil || !m.Deleted {
			t.Errorf("message = %+v", m)
		}
		h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: general})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h.Messages {
			if m.Timestamp == ts {
				t.Error("deleted message in history")
			}
		}
		_, _, err = api.DeleteMessageContext(ctx, general, ts)
		wantSlackErr(t, err, "message_not_found")
	})
	t.Run("history is newest first, without replies, in pages", func(t *testing.T) {
		var got []slack.Message
		cursor := ""
		for range 10 {
			h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: general, Limit: 2, Cursor: cursor, IncludeAllMetadata: true})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, h.Messages...)
			if !h.HasMore {
				break
			}
			cursor = h.ResponseMetaData.NextCursor
		}
		var want []string
		for _, m := range slices.Backward(fake.Snapshot().Messages[general]) {
			if !m.Deleted && m.EphemeralTo == "" && m.ThreadTS == "" {
				want = append(want, m.TS)
			}
		}
		var ts []string
		for _, m := range got {
			ts = append(ts, m.Timestamp)
		}
		if !slices.Equal(ts, want) || len(ts) < 3 {
			t.Errorf("history = %v, want %v", ts, want)
		}
		if got[len(got)-1].Metadata.EventType != "botbridge_reply" {
			t.Errorf("metadata missing with include_all_metadata: %+v", got[len(got)-1])
		}
		_, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: random})
		wantSlackErr(t, err, "not_in_channel")
	})
	t.Run("chat.postEphemeral records who sees it", func(t *testing.T) {
		ts, err := api.PostEphemeralContext(ctx, general, bob, slack.MsgOptionText("only you", false))
		if err != nil {
			t.Fatal(err)
		}
		if m := fake.Snapshot().Message(general, ts); m == nil || m.EphemeralTo != bob {
			t.Errorf("message = %+v", m)
		}
		_, err = api.PostEphemeralContext(ctx, dm, bob, slack.MsgOptionText("no", false))
		wantSlackErr(t, err, "user_not_in_channel")
	})
	t.Run("reactions are added and removed once", func(t *testing.T) {
		ref := slack.NewRefToMessage(general, parentTS)
		if err := api.AddReactionContext(ctx, "eyes", ref); err != nil {
			t.Fatal(err)
		}
		wantSlackErr(t, api.AddReactionContext(ctx, "eyes", ref), "already_reacted")
		m := fake.Snapshot().Message(general, parentTS)
		if len(m.Reactions) != 1 || m.Reactions[0].Name != "eyes" || !slices.Equal(m.Reactions[0].Users, []string{slacktest.DefaultBotUserID}) {
			t.Errorf("reactions = %+v", m.Reactions)
		}
		if err := api.RemoveReactionContext(ctx, "eyes", ref); err != nil {
			t.Fatal(err)
		}
		wantSlackErr(t, api.RemoveReactionContext(ctx, "eyes", ref), "no_reaction")
		wantSlackErr(t, api.AddReactionContext(ctx, "eyes", slack.NewRefToMessage(general, "1.000000")), "message_not_found")
	})
	t.Run("assistant statuses are recorded", func(t *testing.T) {
		err := api.SetAssistantThreadsStatusContext(ctx, slack.AssistantThreadsSetStatusParameters{ChannelID: dm, ThreadTS: parentTS, Status: "is thinking…"})
		if err != nil {
			t.Fatal(err)
		}
		st := fake.Snapshot().Statuses
		if len(st) != 1 || st[0].Channel != dm || st[0].ThreadTS != parentTS || st[0].Status != "is thinking…" {
			t.Errorf("statuses = %+v", st)
		}
	})
	t.Run("a stream grows one message until it stops", func(t *testing.T) {
		ch, ts, err := api.StartStreamContext(ctx, general, slack.MsgOptionTS(parentTS), slack.MsgOptionMarkdownText("Hel"),
			slack.MsgOptionRecipientUserID(alice), slack.MsgOptionRecipientTeamID(slacktest.DefaultTeamID))
		if err != nil || ch != general {
			t.Fatalf("start: %s, %v", ch, err)
		}
		if _, _, err := api.AppendStreamContext(ctx, general, ts, slack.MsgOptionMarkdownText("lo")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := api.StopStreamContext(ctx, general, ts, slack.MsgOptionMarkdownText("!")); err != nil {
			t.Fatal(err)
		}
		m := fake.Snapshot().Message(general, ts)
		if m.Text != "Hello!" || m.ThreadTS != parentTS || m.Stream == nil || m.Stream.Active ||
			!slices.Equal(m.Stream.Appends, []string{"Hel", "lo", "!"}) || m.Stream.RecipientUserID != alice {
			t.Errorf("message = %+v, stream = %+v", m, m.Stream)
		}
		_, _, err = api.AppendStreamContext(ctx, general, ts, slack.MsgOptionMarkdownText("more"))
		wantSlackErr(t, err, "message_not_in_streaming_state")
	})
	t.Run("a stream in a channel needs its recipient", func(t *testing.T) {
		_, _, err := api.StartStreamContext(ctx, general, slack.MsgOptionMarkdownText("x"))
		wantSlackErr(t, err, "missing_recipient_user_id")
		if _, _, err := api.StartStreamContext(ctx, dm, slack.MsgOptionMarkdownText("x")); err != nil {
			t.Errorf("in a DM: %v", err)
		}
	})
	t.Run("a stream ends after its lifetime", func(t *testing.T) {
		_, ts, err := api.StartStreamContext(ctx, dm, slack.MsgOptionMarkdownText("slow"))
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(slacktest.StreamLifetime + time.Second)
		_, _, err = api.AppendStreamContext(ctx, dm, ts, slack.MsgOptionMarkdownText("too late"))
		wantSlackErr(t, err, "message_not_in_streaming_state")
	})
}

func TestFiles(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	api := newAPI(fake)
	ctx := t.Context()
	parent := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "send me the report"})

	var fileID string
	t.Run("UploadFile's external flow shares the file into the thread", func(t *testing.T) {
		sum, err := api.UploadFileContext(ctx, slack.UploadFileParameters{
			Reader:          strings.NewReader("report body"),
			Filename:        "report.txt",
			FileSize:        len("report body"),
			Title:           "Report",
			Channel:         general,
			ThreadTimestamp: parent.TS,
			InitialComment:  "here it is",
		})
		if err != nil {
			t.Fatal(err)
		}
		fileID = sum.ID
		if sum.Title != "Report" {
			t.Errorf("summary = %+v", sum)
		}
		st := fake.Snapshot()
		f := st.Files[sum.ID]
		if string(f.Content) != "report body" || !f.Uploaded || !f.Completed || f.Mimetype != "text/plain" || len(f.Shares) != 1 {
			t.Errorf("file = %+v", f)
		}
		thread := st.Thread(general, parent.TS)
		if len(thread) != 2 || !slices.Equal(thread[1].Files, []string{sum.ID}) || thread[1].Text != "here it is" || thread[1].User != slacktest.DefaultBotUserID {
			t.Errorf("thread = %+v", thread)
		}
		gets := st.CallsTo("files.getUploadURLExternal")
		if len(gets) != 1 || gets[0].Args.Get("length") != "11" {
			t.Errorf("getUploadURLExternal calls = %+v", gets)
		}
	})
	t.Run("files.info and the private URL give the file back", func(t *testing.T) {
		f, _, _, err := api.GetFileInfoContext(ctx, fileID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name != "report.txt" || f.Title != "Report" || f.Size != 11 || f.Filetype != "text" || !slices.Equal(f.Channels, []string{general}) {
			t.Errorf("file = %+v", f)
		}
		var got bytesWriter
		if err := api.GetFileContext(ctx, f.URLPrivate, &got); err != nil || string(got) != "report body" {
			t.Errorf("download = %q, %v", got, err)
		}
	})
	t.Run("the private URL needs the bot token", func(t *testing.T) {
		stranger := slack.New("xoxb-stranger", slack.OptionAPIURL(fake.APIURL()))
		f := fake.Snapshot().Files[fileID]
		var got bytesWriter
		err := stranger.GetFileContext(ctx, f.URLPrivate, &got)
		if err == nil || !strings.Contains(err.Error(), "sign-in") {
			t.Errorf("download = %q, %v", got, err)
		}
	})
	t.Run("an upload can be a raw body", func(t *testing.T) {
		u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "raw.bin", FileSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.UploadURL, bytes.NewReader([]byte{1, 2, 3}))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := (&http.Client{}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "OK - 3" {
			t.Errorf("upload answer %d %q", resp.StatusCode, body)
		}
		if _, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}}); err != nil {
			t.Fatal(err)
		}
		if f := fake.Snapshot().Files[u.FileID]; !bytes.Equal(f.Content, []byte{1, 2, 3}) || !f.Completed || len(f.Shares) != 0 {
			t.Errorf("file = %+v", f)
		}
	})
	t.Run("completing an upload that never arrived fails", func(t *testing.T) {
		u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "lost.txt", FileSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		_, err = api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}, Channel: general})
		wantSlackErr(t, err, "file_not_found")
	})
}

func TestResponseURL(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	api := newAPI(fake)
	ctx := t.Context()
	_, ts, err := api.PostMessageContext(ctx, general, slack.MsgOptionText("Pick", false), slack.MsgOptionBlocks(
		slack.NewActionBlock("b", slack.NewButtonBlockElement("a", "A", slack.NewTextBlockObject(slack.PlainTextType, "A", false, false))),
	))
	if err != nil {
		t.Fatal(err)
	}
	var ic slack.InteractionCallback
	if err := json.Unmarshal(fake.BlockActions(slacktest.Action{User: alice, Channel: general, MessageTS: ts, ActionID: "a"}), &ic); err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(ic.ResponseURL); err != nil || !strings.HasPrefix(ic.ResponseURL, fake.URL()) {
		t.Fatalf("response_url %q: %v", u, err)
	}

	t.Run("replace_original updates the message", func(t *testing.T) {
		if _, _, err := api.PostMessageContext(ctx, "", slack.MsgOptionReplaceOriginal(ic.ResponseURL), slack.MsgOptionText("You chose A", false)); err != nil {
			t.Fatal(err)
		}
		m := fake.Snapshot().Message(general, ts)
		if m.Text != "You chose A" || len(m.Updates) != 1 {
			t.Errorf("message = %+v", m)
		}
	})
	t.Run("a plain response is ephemeral to the clicker", func(t *testing.T) {
		if _, _, err := api.PostMessageContext(ctx, "", slack.MsgOptionResponseURL(ic.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("noted", false)); err != nil {
			t.Fatal(err)
		}
		msgs := fake.Snapshot().Messages[general]
		if last := msgs[len(msgs)-1]; last.Text != "noted" || last.EphemeralTo != alice {
			t.Errorf("last message = %+v", last)
		}
	})
	t.Run("delete_original deletes the message", func(t *testing.T) {
		if _, _, err := api.PostMessageContext(ctx, "", slack.MsgOptionDeleteOriginal(ic.ResponseURL)); err != nil {
			t.Fatal(err)
		}
		if m := fake.Snapshot().Message(general, ts); !m.Deleted {
			t.Errorf("message = %+v", m)
		}
	})
}

func TestRefuseImages(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	api := newAPI(fake)
	fake.RefuseImages(func(u string) bool { return strings.Contains(u, "unreachable") })
	image := func(u string) slack.MsgOption {
		return slack.MsgOptionBlocks(slack.NewImageBlock(u, "alt", "", nil))
	}
	t.Run("an image Slack cannot fetch is refused with its message", func(t *testing.T) {
		_, _, err := api.PostMessageContext(t.Context(), general, slack.MsgOptionText("x", false), image("https://unreachable.example/a.png"))
		se := slackErr(t, err)
		if se.Err != "invalid_blocks" || len(se.ResponseMetadata.Messages) != 1 ||
			!strings.Contains(se.ResponseMetadata.Messages[0], "downloading image failed [json-pointer:/blocks/0/image_url]") {
			t.Errorf("error %+v", se)
		}
	})
	t.Run("other images are accepted", func(t *testing.T) {
		if _, _, err := api.PostMessageContext(t.Context(), general, slack.MsgOptionText("x", false), image("https://cdn.example/a.png")); err != nil {
			t.Fatal(err)
		}
	})
}
