package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// storedExtra holds the fields of the stored inbound form added since
// version 1, all optional: the workspace, and what marks inbound that is
// not a message (a reaction, a command, an event).
type storedExtra struct {
	Team     string          `json:"team,omitempty"`
	Reaction *storedReaction `json:"reaction,omitempty"`
	Command  *storedCommand  `json:"command,omitempty"`
	Event    *storedEvent    `json:"event,omitempty"`
}

type storedReaction struct {
	Emoji         string `json:"emoji"`
	Removed       bool   `json:"removed,omitempty"`
	MessageID     string `json:"messageId"`
	ChatMessageID string `json:"chatMessageId,omitempty"`
}

type storedCommand struct {
	Name      string `json:"name"`
	Reset     bool   `json:"reset,omitempty"`
	Ephemeral bool   `json:"ephemeral,omitempty"`
	Bot       string `json:"bot,omitempty"`
}

type storedEvent struct {
	Name string            `json:"name"`
	Text string            `json:"text,omitempty"`
	Data map[string]string `json:"data,omitempty"`
}

// encodeExtra returns the stored form of in's fields added since version 1.
func encodeExtra(in bridge.Inbound) storedExtra {
	s := storedExtra{Team: in.Team}
	if r := in.Reaction; r != nil {
		s.Reaction = &storedReaction{Emoji: r.Emoji, Removed: r.Removed, MessageID: r.MessageID, ChatMessageID: string(r.ChatMessageID)}
	}
	if c := in.Command; c != nil {
		s.Command = &storedCommand{Name: c.Name, Reset: c.Reset, Ephemeral: c.Ephemeral, Bot: c.Bot}
	}
	if e := in.Event; e != nil {
		s.Event = &storedEvent{Name: e.Name, Text: e.Text, Data: maps.Clone(e.Data)}
	}
	return s
}

// decodeExtra sets in's fields from what encodeExtra stored.
func (s storedExtra) decodeExtra(in *bridge.Inbound) {
	in.Team = s.Team
	if r := s.Reaction; r != nil {
		in.Reaction = &bridge.Reaction{Emoji: r.Emoji, Removed: r.Removed, MessageID: r.MessageID, ChatMessageID: chat.MessageID(r.ChatMessageID)}
	}
	if c := s.Command; c != nil {
		in.Command = &bridge.Command{Name: c.Name, Reset: c.Reset, Ephemeral: c.Ephemeral, Bot: c.Bot}
	}
	if e := s.Event; e != nil {
		in.Event = &bridge.Event{Name: e.Name, Text: e.Text, Data: e.Data}
	}
}

// Post implements bridge.Store: the posts table (kept by a trigger as
// deliveries are marked posted, see migration 0004) gives the delivery.
func (db *DB) Post(ctx context.Context, room bridge.RoomKey, platformID string) (bridge.Post, error) {
	var (
		p        bridge.Post
		msgID    string
		platform string
	)
	err := db.queryRow(ctx, `SELECT d.message_id, d.conversation, d.bot, d.platform, d.room, d.thread,
		d.reply_message, d.reply_user, d.ephemeral
		FROM posts p JOIN deliveries d ON d.message_id = p.message_id
		WHERE p.platform = ? AND p.room = ? AND p.platform_id = ?`,
		string(room.Platform), room.Room, platformID).Scan(&msgID, &p.Conversation, &p.Bot, &platform,
		&p.Target.Room.Room, &p.Target.Room.Thread, &p.Target.MessageID, &p.Target.UserID, &p.Target.Ephemeral)
	if err != nil {
		return p, wrap("post", err)
	}
	p.MessageID = chat.MessageID(msgID)
	p.Target.Room.Platform = bridge.Platform(platform)
	return p, nil
}

// EnqueueInboundTo implements bridge.Store. For a duplicate it returns the
// item stored before.
func (db *DB) EnqueueInboundTo(ctx context.Context, conv int64, in bridge.Inbound) (bridge.OutboxItem, bool, error) {
	if in.Key == "" {
		return bridge.OutboxItem{}, false, errors.New("enqueue inbound: no event key")
	}
	body, err := encodeInbound(in)
	if err != nil {
		return bridge.OutboxItem{}, false, fmt.Errorf("enqueue inbound: %w", err)
	}
	now := db.Now()
	item := bridge.OutboxItem{Conversation: conv, Inbound: in, CreatedAt: fromMS(ms(now))}
	created := false
	err = db.tx(ctx, "enqueue inbound", func(t *txn) error {
		stored, err := scanOutboxItem(t.queryRow(`SELECT id, conversation, body, parts_sent, created_ms
			FROM inbound WHERE platform = ? AND event_key = ?`, string(in.Room.Platform), string(in.Key)))
		if err == nil {
			item = stored
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var one int
		if err := t.queryRow(`SELECT 1 FROM conversations WHERE id = ?`, conv).Scan(&one); err != nil {
			return err
		}
		res, err := t.exec(`INSERT INTO inbound (platform, event_key, conversation, body, created_ms)
			VALUES (?, ?, ?, ?, ?)`, string(in.Room.Platform), string(in.Key), conv, body, ms(now))
		if err != nil {
			return err
		}
		if item.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return bridge.OutboxItem{}, false, err
	}
	return item, created, nil
}
