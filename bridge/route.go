package bridge

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Answer is a route's policy for rooms that are not DMs.
type Answer string

// Answering policies.
const (
	// AnswerMention answers a message that mentions the bot, and then every
	// message of that thread.
	AnswerMention Answer = "mention"
	// AnswerAll answers every message.
	AnswerAll Answer = "all"
)

// DMFilter says whether a route applies to direct messages.
type DMFilter string

// DM filters.
const (
	DMAny   DMFilter = ""      // DMs and rooms
	DMOnly  DMFilter = "only"  // DMs only
	DMNever DMFilter = "never" // rooms only
)

// DefaultResetWord is the message that starts a new conversation. It is not a
// slash command because Slack swallows those.
const DefaultResetWord = "!reset"

// Route sends messages of some rooms to a bot. The first route that matches a
// message's platform, room and DM-ness decides; a message no route matches
// is ignored.
type Route struct {
	// Bot is the name of the bot that answers.
	Bot string
	// Platform limits the route to one platform; empty matches all.
	Platform Platform
	// Rooms limits the route to rooms whose id or name matches one of these
	// patterns (path.Match syntax: "C0123", "#support-*", "!abc:example.org");
	// empty matches every room.
	Rooms []string
	// DM says whether the route applies to DMs, rooms, or both.
	DM DMFilter
	// Answer is the policy in rooms; DMs are always answered. Default mention.
	Answer Answer
	// Scope maps messages to conversations; empty picks the default: user in
	// DMs, thread in Slack channels, room elsewhere.
	Scope Scope
	// Users, when not empty, lists the platform user ids allowed to talk to
	// the bot; messages of others are ignored.
	Users []string
	// AllowBots lets messages of other bots through (never the bridge's own).
	AllowBots bool
	// ResetWord is the message that starts a new conversation; default
	// "!reset".
	ResetWord string
	// Team limits the route to one workspace (Inbound.Team: a Slack team id,
	// or the enterprise id of an org-wide install); empty matches all.
	Team string
	// CommandReplies says where the bot's answers to slash commands go:
	// CommandReplyEphemeral (the default: to the person alone) or
	// CommandReplyChannel.
	CommandReplies CommandReply
	// Welcome sends the bot an Event of kind EventJoined when someone joins
	// a room of the route, for it to greet them; off by default.
	Welcome bool
	// Prompts are suggested to people who open an agent thread (Slack's
	// assistant threads) with the route's bot.
	Prompts []Prompt
}

// Router picks the route of an inbound message.
type Router struct {
	routes []Route
}

// NewRouter checks the routes and fills their defaults. bots lists the bot
// names that exist; a route naming another is an error.
func NewRouter(routes []Route, bots []string) (*Router, error) {
	if len(routes) == 0 {
		return nil, errors.New("routes: none configured; add a route that names a bot")
	}
	r := &Router{routes: make([]Route, len(routes))}
	var errs []error
	for i, rt := range routes {
		field := fmt.Sprintf("routes[%d]", i)
		if !slices.Contains(bots, rt.Bot) {
			errs = append(errs, fmt.Errorf("%s.bot: no bot named %q (bots: %s)", field, rt.Bot, strings.Join(bots, ", ")))
		}
		switch rt.Answer {
		case "":
			rt.Answer = AnswerMention
		case AnswerMention, AnswerAll:
		default:
			errs = append(errs, fmt.Errorf("%s.answer: %q is not mention or all", field, rt.Answer))
		}
		switch rt.DM {
		case DMAny, DMOnly, DMNever:
		default:
			errs = append(errs, fmt.Errorf("%s.dm: %q is not only or never (leave it out for both)", field, rt.DM))
		}
		if rt.Scope != "" && !rt.Scope.Valid() {
			errs = append(errs, fmt.Errorf("%s.scope: %q is not thread, room or user", field, rt.Scope))
		}
		for _, p := range rt.Rooms {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s.rooms: bad pattern %q: %v", field, p, err))
			}
		}
		if rt.ResetWord == "" {
			rt.ResetWord = DefaultResetWord
		}
		errs = append(errs, rt.checkExtras(field)...)
		r.routes[i] = rt
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Bots returns the names of the bots the routes send messages to, in the
// order of the routes, each once.
func (r *Router) Bots() []string {
	var out []string
	for _, rt := range r.routes {
		if !slices.Contains(out, rt.Bot) {
			out = append(out, rt.Bot)
		}
	}
	return out
}

// Admits reports whether the bridge takes messages of in's sender in in's
// room at all: the first route matching the room lets the sender talk to its
// bot (the route's users, and bots only where allowed). It does not look at
// the message itself (mentions, text): an adapter asks it before it spends
// anything on a message (an invite, an event it cannot decrypt yet).
func (r *Router) Admits(in Inbound) bool {
	rt, ok := r.Match(in)
	if !ok {
		return false
	}
	_, refused := rt.refuses(in)
	return !refused
}

// Match returns the first route for in's platform, room and DM-ness.
func (r *Router) Match(in Inbound) (Route, bool) {
	for _, rt := range r.routes {
		if rt.matches(in) {
			return rt, true
		}
	}
	return Route{}, false
}

func (rt Route) matches(in Inbound) bool {
	if rt.Platform != "" && rt.Platform != in.Room.Platform || rt.Team != "" && rt.Team != in.Team {
		return false
	}
	if (rt.DM == DMOnly && !in.DM) || (rt.DM == DMNever && in.DM) {
		return false
	}
	if len(rt.Rooms) == 0 {
		return true
	}
	for _, p := range rt.Rooms {
		if ok, _ := path.Match(p, in.Room.Room); ok {
			return true
		}
		if in.RoomName != "" {
			if ok, _ := path.Match(p, in.RoomName); ok {
				return true
			}
		}
	}
	return false
}

// ScopeFor returns the scope the route gives in: its own, or the default.
func (rt Route) ScopeFor(in Inbound) Scope {
	switch {
	case rt.Scope != "":
		return rt.Scope
	case in.DM:
		return ScopeUser
	case in.Room.Platform == PlatformSlack:
		return ScopeThread
	default:
		return ScopeRoom
	}
}

// Decision is what the bridge does with an inbound message.
type Decision struct {
	// Answer is false when the message is ignored; Reason says why.
	Answer bool
	Reason string
	// Reset is set when the message is the reset word.
	Reset bool
	// Key is the conversation the message belongs to.
	Key ConvKey
	// Engage is the thread the bot takes part in from now on (empty Room:
	// none).
	Engage RoomKey
}

// NeedsThreadState reports whether Decide needs to know if the message's
// thread is engaged, so that the caller looks it up only then.
func (rt Route) NeedsThreadState(in Inbound) bool {
	return !in.DM && rt.Answer == AnswerMention && !in.addressed() && in.Room.Thread != ""
}

// Decide applies the route's rules to in. engaged tells whether the bot
// takes part in in's thread (see NeedsThreadState).
func (rt Route) Decide(in Inbound, engaged bool) Decision {
	if reason, refused := rt.refuses(in); refused {
		return Decision{Reason: reason}
	}
	switch {
	case !in.DM && rt.Answer == AnswerMention && !in.addressed() && !engaged:
		return Decision{Reason: "not mentioned"}
	}
	d := Decision{Answer: true, Key: ConvKey{Bot: rt.Bot, Scope: rt.ScopeFor(in), Room: in.Room.Top()}}
	switch d.Key.Scope {
	case ScopeThread:
		d.Key.Room.Thread = in.Room.Thread
		if d.Key.Room.Thread == "" {
			d.Key.Room.Thread = in.MessageID
		}
		if d.Key.Room.Thread != "" && !in.DM {
			d.Engage = d.Key.Room
		}
	case ScopeUser:
		d.Key.User = in.Sender.ID
		fallthrough
	default:
		if in.Room.Thread != "" && !in.DM {
			d.Engage = in.Room
		}
	}
	d.Reset = in.Action == nil && len(in.Files) == 0 && rt.ResetWord != "" &&
		strings.EqualFold(strings.TrimSpace(in.Text), rt.ResetWord) || in.Command != nil && in.Command.Reset
	return d
}

// refuses reports whether the route refuses in's sender, and why.
func (rt Route) refuses(in Inbound) (reason string, refused bool) {
	switch {
	case in.Sender.Bot && !rt.AllowBots:
		return "sender is a bot", true
	case len(rt.Users) > 0 && !slices.Contains(rt.Users, in.Sender.ID):
		return "sender not in the route's users", true
	}
	return "", false
}

// ReplyTarget returns where the bot's answers to in go: the conversation's
// thread in thread scope, else where in was said.
func (d Decision) ReplyTarget(in Inbound) ReplyTarget {
	room := in.Room
	if d.Key.Scope == ScopeThread {
		room = d.Key.Room
	}
	return ReplyTarget{Room: room, MessageID: in.MessageID, UserID: in.Sender.ID, Ephemeral: in.ephemeral()}
}
