package matrix

import (
	"context"
	"encoding/json"
	"html"
	"regexp"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// inbound turns a timeline event into a message for the bridge, decrypting
// it first in encrypted rooms, or a reaction: a keycap answer to the
// standing choice, else a bridge.Reaction (which the bridge keeps when it is
// on a message of the bot). It returns false for what the bot does not get:
// its own events, state, redacted or undecryptable events.
func (a *Adapter) inbound(ctx context.Context, evt *event.Event) (bridge.Inbound, bool) {
	if evt.Sender == a.user || evt.StateKey != nil {
		return bridge.Inbound{}, false
	}
	if evt.Type.Type == event.EventEncrypted.Type {
		dec, ok := a.decrypt(ctx, evt)
		if !ok || a.verification(ctx, dec) {
			return bridge.Inbound{}, false
		}
		a.noteTrust(evt, dec)
		if !a.trusted(ctx, evt, dec) {
			return bridge.Inbound{}, false
		}
		evt = dec
	} else if a.verification(ctx, evt) {
		return bridge.Inbound{}, false
	}
	return a.decrypted(ctx, evt)
}

// verification hands an in-room verification event to the verifier and
// reports whether evt was one.
func (a *Adapter) verification(ctx context.Context, evt *event.Event) bool {
	if a.verify != nil {
		return a.verify.roomEvent(ctx, evt)
	}
	return strings.HasPrefix(evt.Type.Type, "m.key.verification.")
}

// decrypted turns a message, or a reaction that answers a choice, into an
// Inbound; evt is in the clear (decrypted, or never encrypted).
func (a *Adapter) decrypted(ctx context.Context, evt *event.Event) (bridge.Inbound, bool) {
	if evt.Type.Type == event.EventReaction.Type {
		if evt.Sender == a.user {
			return bridge.Inbound{}, false // its own keycaps under a choice
		}
		return a.reaction(ctx, evt)
	}
	return a.message(ctx, evt)
}

// message turns a (decrypted) m.room.message event into an Inbound.
func (a *Adapter) message(ctx context.Context, evt *event.Event) (bridge.Inbound, bool) {
	if evt.Sender == a.user || evt.Type.Type != event.EventMessage.Type || evt.Unsigned.RedactedBecause != nil {
		return bridge.Inbound{}, false
	}
	if evt.Content.Parsed == nil {
		evt.Type.Class = event.MessageEventType
		_ = evt.Content.ParseRaw(event.EventMessage)
	}
	c, ok := evt.Content.Parsed.(*event.MessageEventContent)
	if !ok || c.MsgType == event.MsgVerificationRequest {
		return bridge.Inbound{}, false
	}
	room := bridge.RoomKey{Platform: Platform, Room: string(evt.RoomID)}
	edited := false
	if orig := c.RelatesTo.GetReplaceID(); orig != "" {
		if c.NewContent == nil {
			return bridge.Inbound{}, false
		}
		edited = true
		room.Thread = string(a.threadOf(ctx, evt.RoomID, orig))
		c = c.NewContent
	} else {
		room.Thread = string(c.RelatesTo.GetThreadParent())
		if c.RelatesTo.GetReplyTo() != "" {
			c.RemoveReplyFallback()
			c.Body = event.TrimReplyFallbackText(c.Body)
		}
	}
	in := bridge.Inbound{
		Key:       bridge.EventKey(evt.ID),
		Room:      room,
		RoomName:  a.roomName(ctx, evt.RoomID),
		MessageID: string(evt.ID),
		Sender:    a.sender(ctx, evt.RoomID, evt.Sender, c.MsgType),
		DM:        a.direct(ctx, evt.RoomID),
		Edited:    edited,
		Time:      time.UnixMilli(evt.Timestamp),
	}
	var text string
	switch c.MsgType {
	case event.MsgImage, event.MsgFile, event.MsgAudio, event.MsgVideo:
		in.Files = []bridge.File{fileOf(evt, c)}
		text = c.GetCaption()
	case event.MsgLocation:
		text = strings.TrimSpace(c.Body + " " + c.GeoURI)
	default:
		text = c.Body
	}
	in.Mentioned, in.Text = mentioned(c, text, a.user, a.botNames(ctx, evt.RoomID))
	return in, true
}

// fileOf describes the file of a media message; its Ref is the mxc URI, or
// in encrypted rooms the JSON of the encrypted file with its keys.
func fileOf(evt *event.Event, c *event.MessageEventContent) bridge.File {
	f := bridge.File{Name: c.GetFileName(), Ref: string(c.URL), Permalink: evt.RoomID.EventURI(evt.ID).MatrixToURL()}
	if c.File != nil {
		b, _ := json.Marshal(c.File)
		f.Ref = string(b)
	}
	if c.Info != nil {
		f.MIMEType, f.Size = c.Info.MimeType, int64(c.Info.Size)
	}
	if f.Name == "" {
		f.Name = "file"
	}
	return f
}

// threadOf returns the thread the event is in, or "".
func (a *Adapter) threadOf(ctx context.Context, room id.RoomID, eventID id.EventID) id.EventID {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	evt, err := a.cli.GetEvent(ctx, room, eventID)
	if err != nil {
		a.log.Debug("look up the thread of an edited message", bridge.LogRoom, room, logEvent, eventID, bridge.LogErr, err)
		return ""
	}
	evt.RoomID = room
	prepare(evt)
	if evt.Type.Type == event.EventEncrypted.Type && a.crypto != nil {
		if dec, err := a.crypto.Decrypt(ctx, evt); err == nil {
			evt = dec
		}
	}
	if rel, ok := evt.Content.Raw["m.relates_to"].(map[string]any); ok && rel["rel_type"] == string(event.RelThread) {
		s, _ := rel["event_id"].(string)
		return id.EventID(s)
	}
	if c, ok := evt.Content.Parsed.(*event.MessageEventContent); ok {
		return c.RelatesTo.GetThreadParent()
	}
	return ""
}

// sender describes who sent a message. m.notice is how Matrix marks
// messages of bots, which must not answer one another.
func (a *Adapter) sender(ctx context.Context, room id.RoomID, user id.UserID, t event.MessageType) bridge.Sender {
	s := bridge.Sender{ID: string(user), Name: user.Localpart(), Bot: t == event.MsgNotice}
	if m, err := a.state.TryGetMember(ctx, room, user); err == nil && m != nil && m.Displayname != "" {
		s.Name = m.Displayname
	}
	return s
}

// direct reports whether the room has two members: the bot and a person.
func (a *Adapter) direct(ctx context.Context, room id.RoomID) bool {
	members, err := a.state.GetRoomMembers(ctx, room, event.MembershipJoin)
	if err == nil && len(members) > 0 {
		return len(members) == 2
	}
	resp, err := a.cli.JoinedMembers(ctx, room)
	if err != nil {
		a.log.Debug("count the room's members", bridge.LogRoom, room, bridge.LogErr, err)
		return false
	}
	return len(resp.Joined) == 2
}

// botNames returns the names people may address the bot by in room: its
// display name there, its global one, and its localpart.
func (a *Adapter) botNames(ctx context.Context, room id.RoomID) []string {
	var names []string
	if m, err := a.state.TryGetMember(ctx, room, a.user); err == nil && m != nil && m.Displayname != "" {
		names = append(names, m.Displayname)
	}
	a.mu.Lock()
	if a.displayName != "" {
		names = append(names, a.displayName)
	}
	a.mu.Unlock()
	names = append(names, a.user.Localpart())
	slices.Sort(names)
	return slices.Compact(names)
}

var hrefRe = regexp.MustCompile(`href="([^"]+)"`)

// mentioned reports whether a message mentions the bot (m.mentions, a pill
// in the formatted body, or its id or a name in the text) and returns the
// text without the mention.
func mentioned(c *event.MessageEventContent, text string, bot id.UserID, names []string) (bool, string) {
	hit := c.Mentions.Has(bot)
	for _, m := range hrefRe.FindAllStringSubmatch(c.FormattedBody, -1) {
		if uri, err := id.ParseMatrixURIOrMatrixToURL(html.UnescapeString(m[1])); err == nil && uri.UserID() == bot {
			hit = true
		}
	}
	for _, name := range append([]string{string(bot)}, names...) {
		if rest, ok := cutName(text, name); ok {
			return true, rest
		}
	}
	return hit, strings.TrimSpace(text)
}

// cutName removes the first mention of name from text: the name as a
// whole word, case ignored, with an optional "@" before it and ":" or ","
// after it, and the spaces that follow.
func cutName(text, name string) (string, bool) {
	name = strings.TrimPrefix(strings.TrimSpace(name), "@")
	if name == "" {
		return text, false
	}
	re, err := regexp.Compile(`(?i)(?:^|[^\pL\pN_])(@?` + regexp.QuoteMeta(name) + `[:,]?)(\s+|$|[^\pL\pN_])`)
	if err != nil {
		return text, false
	}
	m := re.FindStringSubmatchIndex(text)
	if m == nil {
		return text, false
	}
	start, end := m[2], m[3]
	if strings.TrimSpace(text[m[4]:m[5]]) == "" {
		end = m[5]
	}
	return strings.TrimSpace(text[:start] + text[end:]), true
}
