package slack

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	bridgemedia "github.com/botbridge/botbridge/bridge/media"
	bridgerender "github.com/botbridge/botbridge/bridge/render"
	"github.com/botbridge/botbridge/chat"
)

// Slack's limits, with a margin where Slack counts differently than runes.
const (
	maxTextRunes     = 39_000 // text of a message; Slack refuses 40,000
	maxSectionRunes  = 3_000  // text of a section block
	maxBlocks        = 50     // blocks of a message
	maxFallbackRunes = 3_000  // the notification text of a message with blocks
	maxButtonText    = 75     // text of a button or option
	maxButtonValue   = 2_000  // value of a button
	maxOptionValue   = 150    // value of a select option
	maxOptions       = 100    // options of a select
	maxElements      = 25     // elements of an actions block
	maxAltText       = 2_000  // alt text of an image
	maxURL           = 3_000  // URL of an image or a link button
	maxPlaceholder   = 150    // placeholder of a select
	maxTitleRunes    = 500    // a card's or file's title as shown: escaped, it stays well within a section
	// maxFiles is the most files shared with one message: Slack's clients
	// share at most 10, and files.completeUploadExternal fails with more
	// than 14 (undocumented).
	maxFiles = 10
)

// Action ids of the interactive elements the adapter posts. A click on an
// element whose id starts with actionPick goes to the bot; link buttons
// (actionLink) only open their URL.
const (
	actionPick = "bb:pick:"
	actionLink = "bb:link:"
)

// block is a Block Kit block (or element) as JSON fields. It satisfies
// slackapi.Block so that slack-go sends it as it is.
type block map[string]any

var _ slackapi.Block = block(nil)

// BlockType returns the block's type.
func (b block) BlockType() slackapi.MessageBlockType {
	t, _ := b["type"].(string)
	return slackapi.MessageBlockType(t)
}

// ID returns the block's block_id.
func (b block) ID() string {
	id, _ := b["block_id"].(string)
	return id
}

// post is one Slack message a payload renders to: mrkdwn text alone, or
// blocks with text as the notification fallback, and files to upload with
// it.
type post struct {
	text   string
	blocks []block
	media  []media
	size   int // runes of text in blocks
}

// media is a file the bot gave by URL that the adapter downloads and
// uploads to Slack.
type media struct {
	url   string
	name  string // file name, with an extension Slack can type it by
	title string
}

func plainText(s string) block {
	return block{"type": "plain_text", "text": s, "emoji": true}
}

func mrkdwnText(s string) block {
	return block{"type": "mrkdwn", "text": s}
}

func section(text string) block {
	return block{"type": "section", "text": mrkdwnText(text)}
}

// render turns a payload into the messages that show it on Slack, in
// order. Texts become mrkdwn messages split at paragraph boundaries below
// Slack's limits; everything else becomes Block Kit, spread over as many
// messages as Slack's limits on blocks, text and files need, so that no
// part of a reply is lost for its size. The result depends on p alone: the
// parts of a reply are numbered by it (Send, FindSent, Edit).
func render(p chat.Payload) []post {
	switch p := p.(type) {
	case chat.Text:
		return textPosts(p.Text)
	case chat.Markdown:
		return textPosts(p.Markdown)
	}
	r := &renderer{}
	r.payload(p)
	var out []post
	for _, p := range r.posts {
		p.blocks = trimDividers(p.blocks)
		if len(p.blocks) == 0 && len(p.media) == 0 && strings.TrimSpace(p.text) == "" {
			continue
		}
		p.text = escape(truncate(strings.TrimSpace(p.text), maxFallbackRunes))
		out = append(out, p)
	}
	if len(out) == 0 {
		return textPosts(bridgerender.PlainText(p))
	}
	return out
}

// trimDividers drops the dividers that would begin or end a message: those
// between the cards of a carousel where it is cut into messages.
func trimDividers(bs []block) []block {
	for len(bs) > 0 && bs[0].BlockType() == slackapi.MBTDivider {
		bs = bs[1:]
	}
	for len(bs) > 0 && bs[len(bs)-1].BlockType() == slackapi.MBTDivider {
		bs = bs[:len(bs)-1]
	}
	return bs
}

func textPosts(md string) []post {
	var out []post
	for _, t := range splitText(mrkdwn(md), maxTextRunes) {
		out = append(out, post{text: t})
	}
	if len(out) == 0 {
		out = append(out, post{text: "…"}) // Slack refuses an empty message
	}
	return out
}

// renderer collects the blocks of a payload into posts.
type renderer struct {
	posts []post
	picks int // interactive elements so far, numbered for unique action ids
}

func (r *renderer) cur() *post {
	if len(r.posts) == 0 {
		r.posts = append(r.posts, post{})
	}
	return &r.posts[len(r.posts)-1]
}

// next starts a new post.
func (r *renderer) next() { r.posts = append(r.posts, post{}) }

// maxPostBlocks is the most blocks render puts in a message: one less than
// Slack takes, for the line a click adds (chosen).
const maxPostBlocks = maxBlocks - 1

// fits reports whether n more blocks with size runes of text fit in p. The
// files p shares count as blocks: a file that cannot be downloaded is shown
// as a link block instead (upload, withLinks).
func (p *post) fits(n, size int) bool {
	return len(p.blocks)+len(p.media)+n <= maxPostBlocks && p.size+size <= maxTextRunes
}

// empty reports whether nothing was put in p yet.
func (p *post) empty() bool { return len(p.blocks) == 0 && len(p.media) == 0 }

// add appends blocks that belong together (a question and its buttons, a
// card), starting a new post when they do not fit in the current one. A
// group too large for any one message is spread over as many as it needs,
// each beginning a message; fallback, their plain text, is the notification
// text of each.
func (r *renderer) add(fallback string, bs ...block) {
	if len(bs) == 0 {
		if fallback != "" {
			r.cur().text += fallback + "\n"
		}
		return
	}
	size := 0
	for _, b := range bs {
		size += blockRunes(b)
	}
	if p := r.cur(); !p.empty() && !p.fits(len(bs), size) {
		r.next()
	}
	for len(bs) > 0 {
		p := r.cur()
		n, size := 0, 0
		for n < len(bs) && p.fits(n+1, size+blockRunes(bs[n])) {
			size += blockRunes(bs[n])
			n++
		}
		if n == 0 && !p.empty() {
			r.next()
			continue
		}
		n = max(n, 1) // one block always fits an empty message (blocks are cut below the limits)
		p.blocks = append(p.blocks, bs[:n]...)
		p.size += size
		if fallback != "" {
			p.text += fallback + "\n"
		}
		if bs = bs[n:]; len(bs) > 0 {
			r.next()
		}
	}
}

// attach adds a file to upload with the current post, or with a new one
// when the current one shares maxFiles files already or is full.
func (r *renderer) attach(m media) {
	if p := r.cur(); len(p.media) >= maxFiles || !p.fits(1, 0) {
		r.next()
	}
	p := r.cur()
	p.media = append(p.media, m)
	p.text += m.title + "\n"
}

func blockRunes(b block) int {
	if t, ok := b["text"].(block); ok {
		s, _ := t["text"].(string)
		return utf8.RuneCountInString(s)
	}
	return 0
}

func (r *renderer) payload(p chat.Payload) {
	switch p := p.(type) {
	case chat.Text:
		r.text(mrkdwn(p.Text), p.Text)
	case chat.Markdown:
		r.text(mrkdwn(p.Markdown), p.Markdown)
	case chat.Image:
		r.image(p.ImageURL)
	case chat.Audio:
		r.attach(newMedia(p.AudioURL, ""))
	case chat.Video:
		r.attach(newMedia(p.VideoURL, ""))
	case chat.File:
		r.attach(newMedia(p.FileURL, p.Title))
	case chat.Location:
		r.text(location(p), bridgerender.PlainText(p))
	case chat.Card:
		r.card(p)
	case chat.Carousel:
		for i, c := range p.Items {
			if i > 0 {
				r.add("", block{"type": "divider"})
			}
			r.card(c)
		}
	case chat.Choice:
		r.question(p.Text, p.Text, r.buttons(optionActions(p.Options))...)
	case chat.Dropdown:
		r.dropdown(p)
	case chat.Bloc:
		for _, it := range p.Items {
			r.payload(it)
		}
	default:
		r.text(escape(bridgerender.PlainText(p)), bridgerender.PlainText(p))
	}
}

// text adds mrkdwn as sections of at most maxSectionRunes.
func (r *renderer) text(md, fallback string) {
	for _, t := range splitText(md, maxSectionRunes) {
		r.add(fallback, section(t))
		fallback = ""
	}
}

func (r *renderer) image(u string) {
	if !isPublicURL(u) || len(u) > maxURL {
		r.attach(imageMedia(u))
		return
	}
	name := fileName(u, "image")
	r.add("[image] "+name, block{"type": "image", "image_url": u, "alt_text": truncate(name, maxAltText)})
}

func location(l chat.Location) string {
	var lines []string
	if l.Title != "" {
		lines = append(lines, ":round_pushpin: *"+escape(l.Title)+"*")
	}
	if l.Address != "" {
		lines = append(lines, escape(l.Address))
	}
	lines = append(lines, "<"+escape(bridgerender.MapURL(l))+"|Open the map> ("+bridgerender.LatLon(l)+")")
	return strings.Join(lines, "\n")
}

func (r *renderer) card(c chat.Card) {
	text := "*" + escape(truncate(c.Title, maxTitleRunes)) + "*"
	if c.Subtitle != "" {
		text += "\n" + mrkdwn(c.Subtitle)
	}
	var bs []block
	for _, t := range splitText(text, maxSectionRunes) {
		bs = append(bs, section(t))
	}
	sec := bs[0]
	if c.ImageURL != "" {
		if isPublicURL(c.ImageURL) && len(c.ImageURL) <= maxURL {
			sec["accessory"] = block{"type": "image", "image_url": c.ImageURL, "alt_text": truncate(nonEmpty(c.Title, fileName(c.ImageURL, "image")), maxAltText)}
		} else {
			r.attach(imageMedia(c.ImageURL))
		}
	}
	r.add(strings.Join(nonEmptyAll(c.Title, c.Subtitle), " – "), append(bs, r.buttons(c.Actions)...)...)
}

// question adds text with the controls that answer it.
func (r *renderer) question(text, fallback string, controls ...block) {
	var bs []block
	if strings.TrimSpace(text) != "" {
		for _, t := range splitText(mrkdwn(text), maxSectionRunes) {
			bs = append(bs, section(t))
		}
	}
	r.add(fallback, append(bs, controls...)...)
}

func optionActions(opts []chat.ChoiceOption) []chat.CardAction {
	out := make([]chat.CardAction, len(opts))
	for i, o := range opts {
		out[i] = chat.CardAction{Action: chat.ActionPostback, Label: o.Label, Value: o.Value}
	}
	return out
}

// buttons renders card actions as actions blocks: postback and say buttons
// carry their value to the bot, url buttons open their link.
func (r *renderer) buttons(actions []chat.CardAction) []block {
	var els []block
	for _, a := range actions {
		label := truncate(nonEmpty(a.Label, a.Value, "…"), maxButtonText)
		r.picks++
		btn := block{"type": "button", "text": plainText(label)}
		if a.Action == chat.ActionURL {
			if !isURL(a.Value) || len(a.Value) > maxURL {
				continue
			}
			btn["action_id"] = actionLink + strconv.Itoa(r.picks)
			btn["url"] = a.Value
		} else {
			btn["action_id"] = actionPick + strconv.Itoa(r.picks)
			btn["value"] = truncate(a.Value, maxButtonValue)
		}
		els = append(els, btn)
	}
	var out []block
	for len(els) > 0 {
		n := min(len(els), maxElements)
		out = append(out, block{"type": "actions", "elements": els[:n]})
		els = els[n:]
	}
	return out
}

// dropdown renders a select menu beside the question, or buttons when an
// option's value is too long for a select.
func (r *renderer) dropdown(d chat.Dropdown) {
	for _, o := range d.Options {
		if utf8.RuneCountInString(o.Value) > maxOptionValue {
			r.question(d.Text, d.Text, r.buttons(optionActions(d.Options))...)
			return
		}
	}
	// Slack takes maxOptions options per menu: more options make several
	// menus, each saying which options it holds.
	var selects []block
	for first := 0; first < len(d.Options); first += maxOptions {
		opts := d.Options[first:min(first+maxOptions, len(d.Options))]
		var os []block
		for _, o := range opts {
			os = append(os, block{"text": plainText(truncate(nonEmpty(o.Label, o.Value, "…"), maxButtonText)), "value": o.Value})
		}
		placeholder := "Choose…"
		if len(d.Options) > maxOptions {
			placeholder = truncate(fmt.Sprintf("Choose… (%d–%d)", first+1, first+len(opts)), maxPlaceholder)
		}
		r.picks++
		selects = append(selects, block{"type": "static_select", "action_id": actionPick + strconv.Itoa(r.picks),
			"placeholder": plainText(placeholder), "options": os})
	}
	if len(selects) == 1 && strings.TrimSpace(d.Text) != "" && utf8.RuneCountInString(mrkdwn(d.Text)) <= maxSectionRunes {
		sec := section(mrkdwn(d.Text))
		sec["accessory"] = selects[0]
		r.add(d.Text, sec)
		return
	}
	var controls []block
	for len(selects) > 0 {
		n := min(len(selects), maxElements)
		controls = append(controls, block{"type": "actions", "elements": selects[:n]})
		selects = selects[n:]
	}
	r.question(d.Text, d.Text, controls...)
}

func newMedia(u, title string) media {
	name := fileName(u, "file")
	return media{url: u, name: name, title: nonEmpty(title, name)}
}

func imageMedia(u string) media {
	name := fileName(u, "image")
	return media{url: u, name: name, title: name}
}

// link renders a file that could not be uploaded as a link to it, or as
// its title alone when the link is too long for a section.
func (m media) link() block {
	title := ":paperclip: " + escape(truncate(m.title, maxTitleRunes))
	if !isURL(m.url) {
		return section(title)
	}
	link := ":paperclip: <" + escape(m.url) + "|" + escape(strings.ReplaceAll(truncate(m.title, maxTitleRunes), "|", "¦")) + ">"
	if utf8.RuneCountInString(link) > maxSectionRunes {
		return section(title)
	}
	return section(link)
}

// fileName returns the last element of a URL's path, or def.
func fileName(raw, def string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "data" {
		return def
	}
	name := path.Base(u.Path)
	if name == "." || name == "/" || name == "" {
		return def
	}
	return name
}

func nonEmptyAll(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

func nonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// isPublicURL reports whether Slack can fetch u itself: an http(s) URL whose
// host is a public name or address. Images elsewhere (the bridge's own
// network, localhost) are downloaded by the adapter and uploaded instead.
func isPublicURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(pu.Hostname(), "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		return bridgemedia.PublicAddr(ip)
	}
	if !strings.Contains(host, ".") {
		return false
	}
	for _, suffix := range []string{".localhost", ".local", ".internal", ".lan", ".home.arpa"} {
		if strings.HasSuffix("."+host, suffix) {
			return false
		}
	}
	return true
}

// splitText cuts mrkdwn into pieces of at most max runes, at paragraph,
// line or word boundaries, closing and reopening a code block cut in two.
func splitText(s string, max int) []string {
	pieces := bridgerender.SplitText(strings.TrimRight(s, " \n"), max-8, utf8.RuneCountInString) // room for the fences added below
	for i := 0; i < len(pieces)-1; i++ {
		if strings.Count(pieces[i], "```")%2 == 1 {
			pieces[i] += "\n```"
			pieces[i+1] = "```\n" + pieces[i+1]
		}
	}
	return pieces
}
