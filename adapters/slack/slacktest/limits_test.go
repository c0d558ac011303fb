package slacktest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

func TestLimits(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	token := fake.Options().BotToken
	section := func(text string) map[string]any {
		return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}
	}
	button := func(i int) map[string]any {
		return map[string]any{"type": "button", "action_id": fmt.Sprint("b", i), "text": map[string]any{"type": "plain_text", "text": "x"}, "value": "v"}
	}
	buttons := func(n int) []any {
		var out []any
		for i := range n {
			out = append(out, button(i))
		}
		return out
	}
	selectOf := func(n int) map[string]any {
		var opts []any
		for i := range n {
			opts = append(opts, map[string]any{"text": map[string]any{"type": "plain_text", "text": fmt.Sprint("o", i)}, "value": fmt.Sprint(i)})
		}
		return map[string]any{"type": "static_select", "action_id": "s", "options": opts}
	}
	sections := func(n int) []any {
		var out []any
		for range n {
			out = append(out, section("x"))
		}
		return out
	}
	post := func(t *testing.T, text string, blocks []any) map[string]any {
		t.Helper()
		body := map[string]any{"channel": general, "text": text}
		if blocks != nil {
			body["blocks"] = blocks
		}
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		_, out := rawCall(t, fake, "chat.postMessage", "application/json", token, string(raw))
		return out
	}
	cases := []struct {
		name   string
		text   string
		blocks []any
		code   string // "" for accepted
		msg    string // in response_metadata.messages
	}{
		{"50 blocks are accepted", "x", sections(50), "", ""},
		{"51 blocks are refused", "x", sections(51), "invalid_blocks", "no more than 50 items allowed [json-pointer:/blocks]"},
		{"3,000 characters of section text are accepted", "x", []any{section(strings.Repeat("é", 3000))}, "", ""},
		{"3,001 characters of section text are refused", "x", []any{section("a"), section(strings.Repeat("é", 3001))},
			"invalid_blocks", "must be less than 3001 characters [json-pointer:/blocks/1/text/text]"},
		{"25 elements of an actions block are accepted", "x", []any{map[string]any{"type": "actions", "elements": buttons(25)}}, "", ""},
		{"26 elements of an actions block are refused", "x", []any{map[string]any{"type": "actions", "elements": buttons(26)}},
			"invalid_blocks", "no more than 25 items allowed [json-pointer:/blocks/0/elements]"},
		{"100 options of a select are accepted", "x", []any{map[string]any{"type": "actions", "elements": []any{selectOf(100)}}}, "", ""},
		{"101 options of a select are refused", "x", []any{map[string]any{"type": "actions", "elements": []any{selectOf(101)}}},
			"invalid_blocks", "no more than 100 items allowed [json-pointer:/blocks/0/elements/0/options]"},
		{"101 options of a select accessory are refused", "x", []any{map[string]any{"type": "section",
			"text": map[string]any{"type": "mrkdwn", "text": "q"}, "accessory": selectOf(101)}},
			"invalid_blocks", "no more than 100 items allowed [json-pointer:/blocks/0/accessory/options]"},
		{"a button text of 76 characters is refused", "x", []any{map[string]any{"type": "actions", "elements": []any{map[string]any{
			"type": "button", "action_id": "b", "text": map[string]any{"type": "plain_text", "text": strings.Repeat("b", 76)}}}}},
			"invalid_blocks", "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"},
		{"40,000 characters of text are accepted", strings.Repeat("t", 40_000), nil, "", ""},
		{"40,001 characters of text are refused", strings.Repeat("t", 40_001), nil, "msg_too_long", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := post(t, c.text, c.blocks)
			if c.code == "" {
				if out["ok"] != true {
					t.Fatalf("answer %v; want ok", out["error"])
				}
				return
			}
			if out["error"] != c.code {
				t.Fatalf("answer %v; want %s", out["error"], c.code)
			}
			if c.msg == "" {
				return
			}
			md, _ := out["response_metadata"].(map[string]any)
			msgs, _ := md["messages"].([]any)
			if len(msgs) != 1 || msgs[0] != "[ERROR] "+c.msg {
				t.Errorf("messages %v; want %q", msgs, c.msg)
			}
		})
	}
	t.Run("chat.update applies the same limits", func(t *testing.T) {
		out := post(t, "x", sections(1))
		raw, _ := json.Marshal(map[string]any{"channel": general, "ts": out["ts"], "text": "x", "blocks": sections(51)})
		if _, up := rawCall(t, fake, "chat.update", "application/json", token, string(raw)); up["error"] != "invalid_blocks" {
			t.Errorf("answer %v; want invalid_blocks", up["error"])
		}
	})
	t.Run("sharing more than 14 files in one call fails", func(t *testing.T) {
		var files []any
		for i := range slacktest.MaxSharedFiles + 1 {
			files = append(files, map[string]any{"id": fmt.Sprint("F", i)})
		}
		raw, _ := json.Marshal(files)
		body := "channel_id=" + general + "&files=" + string(raw)
		if _, out := rawCall(t, fake, "files.completeUploadExternal", "application/x-www-form-urlencoded", token, body); out["error"] != "internal_error" {
			t.Errorf("answer %v; want internal_error", out["error"])
		}
	})
}
