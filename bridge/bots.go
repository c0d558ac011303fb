package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/botbridge/botbridge/chat"
)

// Bot is the part of the Chat API the bridge uses; *chat.Client implements it.
type Bot interface {
	Hello(ctx context.Context) error
	CreateUser(ctx context.Context, req chat.CreateUserRequest, opts ...chat.CallOption) (chat.User, chat.UserKey, error)
	GetOrCreateUser(ctx context.Context, key chat.UserKey, p chat.UserProfile) (chat.User, error)
	GetOrCreateConversation(ctx context.Context, key chat.UserKey, id chat.ConversationID) (chat.Conversation, error)
	CreateConversation(ctx context.Context, key chat.UserKey, id chat.ConversationID, opts ...chat.CallOption) (chat.Conversation, error)
	AddParticipant(ctx context.Context, key chat.UserKey, conv chat.ConversationID, user chat.UserID) (chat.User, error)
	CreateMessage(ctx context.Context, key chat.UserKey, req chat.CreateMessageRequest, opts ...chat.CallOption) (chat.Message, error)
	CreateEvent(ctx context.Context, key chat.UserKey, conv chat.ConversationID, payload any, opts ...chat.CallOption) (chat.Event, error)
	ListMessagesPage(ctx context.Context, key chat.UserKey, conv chat.ConversationID, nextToken string) ([]chat.Message, string, error)
	Listen(ctx context.Context, key chat.UserKey, conv chat.ConversationID, h chat.ListenHandler) error
}

var _ Bot = (*chat.Client)(nil)

// BotSpec is one Botpress bot the bridge talks to.
type BotSpec struct {
	// Name is how routes refer to the bot.
	Name string
	// API is the bot's Chat API.
	API Bot
	// Signer signs user keys with the bot's encryption key. Nil means the bot
	// has none: users are made with createUser and their keys are kept in
	// the store.
	Signer *chat.Signer
	// WebhookSecret is the Chat integration's Webhook Secret. Set, the
	// bridge takes the bot's messages from the webhooks the service POSTs
	// to Engine.WebhookHandler and opens no stream per conversation while
	// they arrive. Empty: streams and sweeps.
	WebhookSecret string
	// Notify says how the bot is told what is not a message (reactions,
	// people joining, an agent thread's context): NotifyMessage (the
	// default) or NotifyEvent.
	Notify Notify
}

// serviceUser is the platform and id under which the store keeps the bot's
// own service user: the owner of every conversation the bridge creates, who
// adds participants and listens to the streams.
const (
	servicePlatform Platform = "botbridge"
	serviceID       string   = "service"
	serviceChatID   string   = "botbridge"
	serviceName     string   = "botbridge"
)

// bot is a BotSpec with the bridge's caches of keys.
type bot struct {
	BotSpec
	store Store

	mu      sync.Mutex
	service chat.UserKey
	users   map[userRef]User // resolved users, keys included
}

type userRef struct {
	platform Platform
	id       string
}

func newBot(spec BotSpec, st Store) *bot {
	return &bot{BotSpec: spec, store: st, users: make(map[userRef]User)}
}

// chatUserID derives a stable Chat API user id from a platform user id:
// readable where the platform's id fits the id rules, hashed where it does
// not (Matrix ids hold '@', ':' and '.').
func chatUserID(platform Platform, id string) chat.UserID {
	s := string(platform) + "-" + id
	if chat.ValidateID(s) == nil {
		return chat.UserID(s)
	}
	sum := sha256.Sum256([]byte(s))
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '_'
	}, s)
	const keep = chat.MaxIDLength - 1 - 16
	if len(clean) > keep {
		clean = clean[:keep]
	}
	return chat.UserID(clean + "-" + hex.EncodeToString(sum[:8]))
}

// conversationID derives the Chat API id of a conversation generation, so
// that creating it again after a crash finds the same conversation.
func conversationID(c Conversation) chat.ConversationID {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d",
		c.Key.Bot, c.Key.Scope, c.Key.Room.Platform, c.Key.Room.Room, c.Key.Room.Thread, c.Key.User, c.Generation))
	return chat.ConversationID("bb-" + string(c.Key.Room.Platform) + "-" + hex.EncodeToString(sum[:16]))
}

// serviceKey returns the key of the bot's service user, creating the user
// the first time.
func (b *bot) serviceKey(ctx context.Context) (chat.UserKey, error) {
	b.mu.Lock()
	key := b.service
	b.mu.Unlock()
	if key != "" {
		return key, nil
	}
	u, err := b.resolve(ctx, servicePlatform, serviceID, chat.UserID(serviceChatID), chat.UserProfile{Name: serviceName})
	if err != nil {
		return "", fmt.Errorf("service user: %w", err)
	}
	b.mu.Lock()
	b.service = u.Key
	b.mu.Unlock()
	return u.Key, nil
}

// user returns the Botpress user of a person, with its key, creating it the
// first time and updating name and picture when they changed.
func (b *bot) user(ctx context.Context, platform Platform, s Sender) (User, error) {
	p := chat.UserProfile{Name: s.Name, PictureURL: s.AvatarURL}
	if len(p.Name) > 200 { // Botpress's limit on names
		p.Name = p.Name[:200]
	}
	return b.resolve(ctx, platform, s.ID, chatUserID(platform, s.ID), p)
}

func (b *bot) resolve(ctx context.Context, platform Platform, id string, chatID chat.UserID, p chat.UserProfile) (User, error) {
	ref := userRef{platform, id}
	b.mu.Lock()
	u, ok := b.users[ref]
	b.mu.Unlock()
	if ok && u.Name == p.Name && u.AvatarURL == p.PictureURL {
		return u, nil
	}
	if !ok {
		stored, err := b.store.User(ctx, b.Name, platform, id)
		switch {
		case err == nil:
			u, ok = stored, true
		case !errors.Is(err, ErrNotFound):
			return User{}, err
		}
	}
	if ok && u.Key == "" && b.Signer != nil {
		k, err := b.Signer.Key(u.ChatID)
		if err != nil {
			return User{}, err
		}
		u.Key = k
	}
	if ok && u.Key != "" && u.Name == p.Name && u.AvatarURL == p.PictureURL {
		b.remember(ref, u)
		return u, nil
	}
	// New user, or a profile to update.
	if !ok {
		u = User{Bot: b.Name, Platform: platform, PlatformID: id, ChatID: chatID}
	}
	if b.Signer != nil {
		key, err := b.Signer.Key(u.ChatID)
		if err != nil {
			return User{}, err
		}
		if _, err := b.API.GetOrCreateUser(ctx, key, p); err != nil {
			return User{}, fmt.Errorf("get or create user %s: %w", u.ChatID, err)
		}
		u.Key = key
	} else if !ok || u.Key == "" {
		created, key, err := b.createUser(ctx, u.ChatID, p)
		if err != nil {
			return User{}, err
		}
		u.ChatID, u.Key = created, key
	} else if _, err := b.API.GetOrCreateUser(ctx, u.Key, p); err != nil {
		return User{}, fmt.Errorf("update user %s: %w", u.ChatID, err)
	}
	u.Name, u.AvatarURL = p.Name, p.PictureURL
	stored := u
	if b.Signer != nil {
		stored.Key = "" // re-signed on demand; never stored
	}
	if err := b.store.PutUser(ctx, stored); err != nil {
		return User{}, err
	}
	b.remember(ref, u)
	return u, nil
}

// createUser makes a user in createUser mode. When the id is taken (the
// store lost its key), it makes one under a new id.
func (b *bot) createUser(ctx context.Context, id chat.UserID, p chat.UserProfile) (chat.UserID, chat.UserKey, error) {
	req := chat.CreateUserRequest{ID: id, Name: p.Name, PictureURL: p.PictureURL}
	u, key, err := b.API.CreateUser(ctx, req)
	if errors.Is(err, chat.ErrConflict) {
		req.ID = ""
		u, key, err = b.API.CreateUser(ctx, req)
	}
	if err != nil {
		return "", "", fmt.Errorf("create user %s: %w", id, err)
	}
	return u.ID, key, nil
}

func (b *bot) remember(ref userRef, u User) {
	b.mu.Lock()
	b.users[ref] = u
	b.mu.Unlock()
}

// forget drops a user whose Botpress side vanished, so that the next message
// creates it again.
func (b *bot) forget(ctx context.Context, platform Platform, id string) error {
	b.mu.Lock()
	delete(b.users, userRef{platform, id})
	if platform == servicePlatform {
		b.service = ""
	}
	b.mu.Unlock()
	return b.store.DeleteUser(ctx, b.Name, platform, id)
}
