package slack_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/chat"
)

func TestMrkdwn(t *testing.T) {
	cases := []struct{ name, md, want string }{
		{"plain text stays", "hello world", "hello world"},
		{"bold", "some **bold** text", "some *bold* text"},
		{"bold with underscores", "some __bold__ text", "some *bold* text"},
		{"italic", "some *italic* and _also_", "some _italic_ and _also_"},
		{"strike", "~~gone~~ now", "~gone~ now"},
		{"bold inside italic", "*a **b** c*", "_a *b* c_"},
		{"snake_case is not italic", "call my_func_name now", "call my_func_name now"},
		{"lone star stays", "2 * 3 = 6", "2 * 3 = 6"},
		{"inline code escaped", "run `a<b && c>d`", "run `a&lt;b &amp;&amp; c&gt;d`"},
		{"emphasis markers in code stay", "`**not bold**`", "`**not bold**`"},
		{"link", "see [the docs](https://example.com/a?b=1&c=2)", "see <https://example.com/a?b=1&amp;c=2|the docs>"},
		{"link with title", `[docs](https://example.com "Docs")`, "<https://example.com|docs>"},
		{"link with formatted text", "[**bold** link](https://x.org)", "<https://x.org|bold link>"},
		{"link whose text is the url", "[https://x.org](https://x.org)", "<https://x.org>"},
		{"relative link keeps its text", "[home](/index.html)", "home"},
		{"image", "![a cat](https://x.org/cat.png)", "<https://x.org/cat.png|a cat>"},
		{"autolink", "<https://x.org/a>", "<https://x.org/a>"},
		{"email autolink", "<me@example.com>", "<mailto:me@example.com|me@example.com>"},
		{"escapes special characters", "a < b & c > d", "a &lt; b &amp; c &gt; d"},
		{"html is escaped", "<b>hi</b>", "&lt;b&gt;hi&lt;/b&gt;"},
		{"backslash escape", `\*not italic\*`, "*not italic*"},
		{"heading", "# Title", "*Title*"},
		{"heading with bold", "## A **big** deal ##", "*A big deal*"},
		{"bullet list", "- one\n* two\n+ three", "• one\n• two\n• three"},
		{"nested list", "- one\n  - inner", "• one\n    • inner"},
		{"task list", "- [ ] todo\n- [x] done", "☐ todo\n☑ done"},
		{"ordered list", "1. first\n2) second", "1. first\n2. second"},
		{"quote", "> quoted **text**", "&gt; quoted *text*"},
		{"rule", "---", "──────────"},
		{"code block", "```go\nif a < b {\n}\n```", "```\nif a &lt; b {\n}\n```"},
		{"code block keeps markdown", "```\n**x** _y_\n```", "```\n**x** _y_\n```"},
		{"unclosed code block", "```\ncode", "```\ncode\n```"},
		{"paragraphs kept", "one\n\ntwo", "one\n\ntwo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := slack.Mrkdwn(c.md); got != c.want {
				t.Errorf("Mrkdwn(%q)\n got %q\nwant %q", c.md, got, c.want)
			}
		})
	}
}

func TestMarkdownFromSlack(t *testing.T) {
	const self = "U0BOT"
	names := map[string]string{"U1": "Ann"}
	cases := []struct {
		name, text, want string
		mentioned        bool
	}{
		{"mention of the bot is removed", "<@U0BOT> hello there", "hello there", true},
		{"mention in the middle", "hey <@U0BOT> what's up", "hey what's up", true},
		{"mention with comma", "<@U0BOT>, help", "help", true},
		{"no mention", "just text", "just text", false},
		{"other user by name", "ask <@U1> or <@U2>", "ask @Ann or @U2", false},
		{"user with label", "<@U3|bob> hi", "@bob hi", false},
		{"channel", "see <#C1|general>", "see #general", false},
		{"channel without name", "see <#C1>", "see #C1", false},
		{"here", "<!here> look", "@here look", false},
		{"link with label", "<https://x.org|the site>", "[the site](https://x.org)", false},
		{"bare link", "<https://x.org/a?b=1&amp;c=2>", "https://x.org/a?b=1&c=2", false},
		{"mail link", "<mailto:a@b.org|a@b.org>", "a@b.org", false},
		{"entities decoded", "a &lt; b &amp;&amp; c &gt; d", "a < b && c > d", false},
		{"bold", "this is *bold* ok", "this is **bold** ok", false},
		{"strike", "~old~ new", "~~old~~ new", false},
		{"code kept as typed", "`*x* &lt;y&gt;`", "`*x* <y>`", false},
		{"code block kept", "```*x* <@U1>```", "```*x* <@U1>```", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, m := slack.Markdown(c.text, self, names)
			if got != c.want || m != c.mentioned {
				t.Errorf("Markdown(%q) = %q, %v; want %q, %v", c.text, got, m, c.want, c.mentioned)
			}
		})
	}
}

func TestLongTextsAreSplit(t *testing.T) {
	t.Run("at paragraph boundaries below Slack's limit", func(t *testing.T) {
		var b strings.Builder
		for i := 0; b.Len() < 100_000; i++ {
			b.WriteString("A paragraph that says something & more.\n\n")
		}
		posts := slack.Render(chat.Markdown{Markdown: b.String()})
		if len(posts) < 3 {
			t.Fatalf("%d messages, want at least 3", len(posts))
		}
		total := 0
		for i, p := range posts {
			if n := utf8.RuneCountInString(p.Text); n > 40_000 {
				t.Errorf("message %d has %d characters; Slack refuses more than 40,000", i, n)
			}
			if !strings.HasSuffix(p.Text, "more.") {
				t.Errorf("message %d does not end at a paragraph: …%q", i, p.Text[len(p.Text)-20:])
			}
			total += strings.Count(p.Text, "more.")
		}
		if want := strings.Count(b.String(), "more."); total != want {
			t.Errorf("%d paragraphs shown, want %d", total, want)
		}
	})
	t.Run("a code block cut in two is closed and reopened", func(t *testing.T) {
		code := "```\n" + strings.Repeat("line of code\n", 5000) + "```"
		posts := slack.Render(chat.Markdown{Markdown: code})
		if len(posts) < 2 {
			t.Fatalf("%d messages, want 2", len(posts))
		}
		for i, p := range posts {
			if strings.Count(p.Text, "```")%2 != 0 {
				t.Errorf("message %d has an unbalanced code fence", i)
			}
		}
	})
}
