package slack

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// escape escapes the three characters Slack's mrkdwn reserves.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escape(s string) string { return escaper.Replace(s) }

var unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

var (
	headingRE = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	ruleRE    = regexp.MustCompile(`^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$`)
	quoteRE   = regexp.MustCompile(`^ {0,3}> ?(.*)$`)
	bulletRE  = regexp.MustCompile(`^([ \t]*)[-*+][ \t]+(.*)$`)
	orderedRE = regexp.MustCompile(`^([ \t]*)(\d{1,9})[.)][ \t]+(.*)$`)
	fenceRE   = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
)

// mrkdwn converts Markdown, as bots write it, to Slack's mrkdwn: bold,
// italic, strike, inline code and code blocks, links and images, lists,
// quotes and headings (as bold lines), with &, < and > escaped. What mrkdwn
// cannot show (tables, HTML) is kept as escaped text.
func mrkdwn(md string) string {
	lines := strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n")
	out := make([]string, 0, len(lines))
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			out = append(out, mrkdwnLine(lines[i]))
			continue
		}
		fence := m[1]
		var code []string
		j := i + 1
		for ; j < len(lines); j++ {
			t := strings.TrimSpace(lines[j])
			if strings.HasPrefix(t, fence[:3]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
				break
			}
			code = append(code, lines[j])
		}
		out = append(out, "```\n"+escape(strings.Join(code, "\n"))+"\n```")
		i = j
	}
	return strings.Join(out, "\n")
}

// mrkdwnLine converts one line outside code blocks.
func mrkdwnLine(line string) string {
	if m := headingRE.FindStringSubmatch(line); m != nil {
		text := strings.NewReplacer("**", "", "__", "").Replace(m[2])
		if text == "" {
			return ""
		}
		return "*" + inline(text) + "*"
	}
	if ruleRE.MatchString(line) {
		return "──────────"
	}
	if m := quoteRE.FindStringSubmatch(line); m != nil {
		return "&gt; " + mrkdwnLine(m[1])
	}
	if m := bulletRE.FindStringSubmatch(line); m != nil {
		item := m[2]
		bullet := "•"
		switch {
		case strings.HasPrefix(item, "[ ] "):
			bullet, item = "☐", item[4:]
		case strings.HasPrefix(item, "[x] "), strings.HasPrefix(item, "[X] "):
			bullet, item = "☑", item[4:]
		}
		return indent(m[1]) + bullet + " " + inline(item)
	}
	if m := orderedRE.FindStringSubmatch(line); m != nil {
		return indent(m[1]) + m[2] + ". " + inline(m[3])
	}
	return inline(line)
}

// indent turns a list item's indentation into its nesting, shown with
// spaces (mrkdwn has no nested lists).
func indent(ws string) string {
	n := 0
	for _, r := range ws {
		if r == '\t' {
			n += 4
		} else {
			n++
		}
	}
	return strings.Repeat("    ", n/2)
}

// inline converts the inline Markdown of one line.
func inline(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]):
			b.WriteString(escape(s[i+1 : i+2]))
			i += 2
			continue
		case c == '`':
			if out, n, ok := codeSpan(s[i:]); ok {
				b.WriteString(out)
				i += n
				continue
			}
			n := runLen(s[i:], '`')
			b.WriteString(s[i : i+n])
			i += n
			continue
		case c == '!' && strings.HasPrefix(s[i+1:], "["):
			if text, url, n, ok := link(s[i+1:]); ok {
				b.WriteString(slackLink(url, plainInline(text)))
				i += 1 + n
				continue
			}
		case c == '[':
			if text, url, n, ok := link(s[i:]); ok {
				b.WriteString(slackLink(url, plainInline(text)))
				i += n
				continue
			}
		case c == '<':
			if end := strings.IndexByte(s[i:], '>'); end > 1 {
				target := s[i+1 : i+end]
				if isURL(target) {
					b.WriteString("<" + escape(target) + ">")
					i += end + 1
					continue
				}
				if isEmail(target) {
					b.WriteString("<mailto:" + escape(target) + "|" + escape(target) + ">")
					i += end + 1
					continue
				}
			}
		case c == '*' || c == '_' || c == '~':
			if out, n, ok := emphasis(s, i); ok {
				b.WriteString(out)
				i += n
				continue
			}
			n := runLen(s[i:], c)
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// emphasis converts the emphasis that opens at s[i] (**, __, ~~, *, _) and
// returns it with the number of bytes it used.
func emphasis(s string, i int) (string, int, bool) {
	c := s[i]
	run := runLen(s[i:], c)
	var delim, open, close string
	switch {
	case run >= 2 && c != '~' || run == 2 && c == '~':
		delim = s[i : i+2]
		if c == '~' {
			open, close = "~", "~"
		} else {
			open, close = "*", "*"
		}
	case run == 1 && c != '~':
		delim, open, close = s[i:i+1], "_", "_"
	default:
		return "", 0, false
	}
	start := i + len(delim)
	if start >= len(s) || s[start] == ' ' {
		return "", 0, false
	}
	if c == '_' && i > 0 && isWordByte(s[i-1]) {
		return "", 0, false // snake_case
	}
	for j := start + 1; j <= len(s)-len(delim); j++ {
		if s[j-1] == '`' {
			// Skip code spans inside the emphasis.
			if _, n, ok := codeSpan(s[j-1:]); ok {
				j += n - 1
				continue
			}
		}
		if len(delim) == 1 && s[j] == c {
			if n := runLen(s[j:], c); n > 1 {
				j += n - 1 // a double delimiter inside, such as ** in *a **b** c*
				continue
			}
		}
		if !strings.HasPrefix(s[j:], delim) || s[j-1] == ' ' {
			continue
		}
		after := j + len(delim)
		if len(delim) == 1 && after < len(s) && s[after] == c {
			continue // part of a longer run
		}
		if c == '_' && after < len(s) && isWordByte(s[after]) {
			continue
		}
		return open + inline(s[start:j]) + close, after - i, true
	}
	return "", 0, false
}

// codeSpan converts the code span at the start of s.
func codeSpan(s string) (string, int, bool) {
	n := runLen(s, '`')
	for j := n; j < len(s); {
		k := strings.IndexByte(s[j:], '`')
		if k < 0 {
			return "", 0, false
		}
		j += k
		m := runLen(s[j:], '`')
		if m == n {
			code := s[n:j]
			if len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' {
				code = code[1 : len(code)-1]
			}
			if strings.TrimSpace(code) == "" {
				return "", 0, false
			}
			return "`" + escape(strings.ReplaceAll(code, "`", "ˋ")) + "`", j + m, true
		}
		j += m
	}
	return "", 0, false
}

// link parses [text](url "title") at the start of s.
func link(s string) (text, url string, n int, ok bool) {
	depth := 0
	end := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				end = i
			}
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 || end+1 >= len(s) || s[end+1] != '(' {
		return "", "", 0, false
	}
	depth = 0
	close := -1
	for i := end + 1; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				close = i
			}
		}
		if close >= 0 {
			break
		}
	}
	if close < 0 {
		return "", "", 0, false
	}
	target := strings.TrimSpace(s[end+2 : close])
	if strings.HasPrefix(target, "<") {
		if k := strings.IndexByte(target, '>'); k > 0 {
			target = target[1:k]
		}
	} else if k := strings.IndexAny(target, " \t"); k >= 0 {
		target = target[:k] // drop the title
	}
	return s[1:end], target, close + 1, true
}

// slackLink renders a link; targets that are not web or mail links keep
// only their text.
func slackLink(target, text string) string {
	text = strings.TrimSpace(text)
	switch {
	case !isURL(target) && !strings.HasPrefix(target, "mailto:"):
		return escape(text)
	case text == "" || text == target:
		return "<" + escape(target) + ">"
	}
	return "<" + escape(target) + "|" + escape(strings.ReplaceAll(text, "|", "¦")) + ">"
}

// plainInline strips Markdown from a link's text, which Slack shows
// unformatted.
func plainInline(s string) string {
	s = strings.NewReplacer("**", "", "__", "", "~~", "", "`", "").Replace(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func runLen(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}

func isASCIIPunct(c byte) bool {
	return c < utf8.RuneSelf && unicode.IsPunct(rune(c)) || strings.IndexByte("$+<=>^`|~", c) >= 0
}

func isWordByte(c byte) bool {
	return c >= utf8.RuneSelf || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isURL(s string) bool {
	return (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) && !strings.ContainsAny(s, " \t\n<>")
}

var emailRE = regexp.MustCompile(`^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$`)

func isEmail(s string) bool { return emailRE.MatchString(s) }

// Slack's own markup in the text of people's messages.
var (
	slackRefRE  = regexp.MustCompile(`<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>`)
	slackBoldRE = regexp.MustCompile(`(^|[\s(])\*([^*\s](?:[^*\n]*[^*\s])?)\*($|[\s.,;:!?)])`)
	slackStrkRE = regexp.MustCompile(`(^|[\s(])~([^~\s](?:[^~\n]*[^~\s])?)~($|[\s.,;:!?)])`)
)

// markdown converts the text of a person's message from Slack's markup to
// Markdown: user mentions become @names (name gives them; the mention of
// self is removed and reported), channel links #names, links [text](url),
// bold and strike their Markdown forms, and entities are decoded.
func markdown(text, self string, name func(id string) string) (string, bool) {
	mentioned := false
	var parts []string
	code := false
	for seg := range strings.SplitSeq(text, "```") {
		if code {
			parts = append(parts, unescaper.Replace(seg))
		} else {
			parts = append(parts, markdownSegment(seg, self, name, &mentioned))
		}
		code = !code
	}
	out := strings.Join(parts, "```")
	out = strings.NewReplacer(" "+selfMark+" ", " ", selfMark+" ", "", " "+selfMark, "", selfMark, "").Replace(out)
	// "@bot, what is…" leaves the comma at the start.
	return strings.TrimLeft(strings.TrimSpace(out), ",:; "), mentioned
}

// selfMark stands for a removed mention of the bot until the spaces around
// it are tidied.
const selfMark = "\x00"

func markdownSegment(s, self string, name func(string) string, mentioned *bool) string {
	// Inline code keeps its text as typed.
	pieces := strings.Split(s, "`")
	for i := range pieces {
		if i%2 == 1 && i < len(pieces)-1 {
			pieces[i] = unescaper.Replace(pieces[i])
			continue
		}
		p := slackRefRE.ReplaceAllStringFunc(pieces[i], func(m string) string {
			sub := slackRefRE.FindStringSubmatch(m)
			kind, target, label := sub[1], sub[2], sub[3]
			switch kind {
			case "@":
				if target == self {
					*mentioned = true
					return selfMark
				}
				if label != "" {
					return "@" + label
				}
				return "@" + name(target)
			case "#":
				if label != "" {
					return "#" + label
				}
				return "#" + target
			case "!":
				switch {
				case label != "":
					return label
				case strings.HasPrefix(target, "subteam^"):
					return "@team"
				}
				return "@" + target
			}
			if label == "" || label == target || strings.TrimPrefix(target, "mailto:") == label {
				return strings.TrimPrefix(target, "mailto:")
			}
			return "[" + label + "](" + target + ")"
		})
		p = slackBoldRE.ReplaceAllString(p, "$1**$2**$3")
		p = slackStrkRE.ReplaceAllString(p, "$1~~$2~~$3")
		pieces[i] = unescaper.Replace(p)
	}
	return strings.Join(pieces, "`")
}

// truncate cuts s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRightFunc(string(r[:n-1]), unicode.IsSpace) + "…"
}

// tsTime converts a Slack timestamp ("1700000000.000100") to a time; the
// zero time for a malformed one.
func tsTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}
	}
	us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return time.Unix(s, us*1000)
}
