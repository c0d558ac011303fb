package slack

import (
	"context"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
)

// lookupTimeout bounds one background users.info or conversations.info.
const lookupTimeout = 10 * time.Second

// failedTTL is how long a failed lookup is remembered before it is tried
// again.
const failedTTL = time.Minute

// cache remembers looked-up values by key for ttl. A missing or stale value
// is fetched in the background, once however many ask, so that a caller
// handling an event waits at most a short time and goes on without it.
type cache[V any] struct {
	ttl   time.Duration
	fetch func(ctx context.Context, key string) (V, error)

	mu sync.Mutex
	m  map[string]*cached[V]
}

type cached[V any] struct {
	v        V
	ok       bool
	failed   bool
	at       time.Time
	fetching bool
	done     chan struct{}
}

// get returns key's value. A fresh or stale value comes at once (a stale
// one is refreshed behind); otherwise get waits for the fetch up to wait.
// start runs the fetch in the background and reports false when it cannot.
func (c *cache[V]) get(ctx context.Context, start func(func(context.Context)) bool, key string, wait time.Duration) (V, bool) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*cached[V])
	}
	e := c.m[key]
	if e == nil {
		if len(c.m) >= 10_000 {
			for k, old := range c.m {
				if !old.fetching {
					delete(c.m, k)
				}
			}
		}
		e = &cached[V]{}
		c.m[key] = e
	}
	ttl := c.ttl
	if e.failed {
		ttl = failedTTL
	}
	if !e.fetching && (e.at.IsZero() || time.Since(e.at) > ttl) {
		e.fetching = true
		done := make(chan struct{})
		e.done = done
		run := func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			v, err := c.fetch(ctx, key)
			cancel()
			c.mu.Lock()
			if err == nil {
				e.v, e.ok = v, true
			}
			e.failed, e.at, e.fetching = err != nil, time.Now(), false
			c.mu.Unlock()
			close(done)
		}
		c.mu.Unlock()
		if !start(run) {
			run(ctx)
		}
		c.mu.Lock()
	}
	v, ok, fetching, done := e.v, e.ok, e.fetching, e.done
	c.mu.Unlock()
	if ok || !fetching {
		return v, ok
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return e.v, e.ok
}

// userInfo is what the bridge shows of a person.
type userInfo struct {
	name, avatar string
	bot          bool
}

// fetchUser looks a person up; key is the user id, prefixed like a room id
// with the workspace of an install.
func (a *Adapter) fetchUser(ctx context.Context, key string) (userInfo, error) {
	ws, id, err := a.split(key)
	if err != nil {
		return userInfo{}, err
	}
	var u *slackapi.User
	err = a.optional(ctx, ws, "users.info", "", func(ctx context.Context) error {
		var err error
		u, err = ws.api.GetUserInfoContext(ctx, id)
		return err
	})
	if err != nil {
		return userInfo{}, err
	}
	info := userInfo{name: nonEmpty(u.Profile.DisplayName, u.Profile.RealName, u.RealName, u.Name, id), bot: u.IsBot}
	info.avatar = nonEmpty(u.Profile.Image192, u.Profile.Image512, u.Profile.Image72, u.Profile.Image48)
	return info, nil
}

// fetchChannelName looks a channel up by its room id.
func (a *Adapter) fetchChannelName(ctx context.Context, room string) (string, error) {
	ws, id, err := a.split(room)
	if err != nil {
		return "", err
	}
	var c *slackapi.Channel
	err = a.optional(ctx, ws, "conversations.info", room, func(ctx context.Context) error {
		var err error
		c, err = ws.api.GetConversationInfoContext(ctx, &slackapi.GetConversationInfoInput{ChannelID: id})
		return err
	})
	if err != nil {
		return "", err
	}
	return c.Name, nil
}

// user returns what is known of a person of ws, waiting at most
// LookupWait.
func (a *Adapter) user(ctx context.Context, ws *workspace, id string) userInfo {
	u, ok := a.users.get(ctx, a.goBackground, ws.roomID(id), a.cfg.LookupWait)
	if !ok {
		return userInfo{name: id}
	}
	return u
}

// channelName returns the name without # of a channel of ws, or "" when it
// is not known within LookupWait.
func (a *Adapter) channelName(ctx context.Context, ws *workspace, id string) string {
	name, _ := a.chans.get(ctx, a.goBackground, ws.roomID(id), a.cfg.LookupWait)
	return name
}
