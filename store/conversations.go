package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/internal/form"
)

const convColumns = `id, bot, scope, platform, room, thread, user, generation, chat_id,
	reply_room, reply_thread, reply_message, reply_user, cursor_ms, active_ms, reply_ephemeral`

type scanner interface{ Scan(dest ...any) error }

func scanConversation(s scanner) (bridge.Conversation, error) {
	var (
		c                   bridge.Conversation
		scope, platform     string
		replyRoom, replyThr string
		chatID              string
		cursorMS, activeMS  int64
	)
	err := s.Scan(&c.ID, &c.Key.Bot, &scope, &platform, &c.Key.Room.Room, &c.Key.Room.Thread, &c.Key.User,
		&c.Generation, &chatID, &replyRoom, &replyThr, &c.Reply.MessageID, &c.Reply.UserID, &cursorMS, &activeMS, &c.Reply.Ephemeral)
	if err != nil {
		return c, err
	}
	c.Key.Scope = bridge.Scope(scope)
	c.Key.Room.Platform = bridge.Platform(platform)
	c.ChatID = chat.ConversationID(chatID)
	if replyRoom != "" {
		c.Reply.Room = bridge.RoomKey{Platform: c.Key.Room.Platform, Room: replyRoom, Thread: replyThr}
	}
	c.Cursor = fromMS(cursorMS)
	c.ActiveAt = fromMS(activeMS)
	return c, nil
}

// currentConversation returns the newest generation of key, creating
// generation 0 when the key is new.
func (db *DB) currentConversation(t *txn, key bridge.ConvKey, now time.Time) (bridge.Conversation, error) {
	c, err := scanConversation(t.queryRow(`SELECT `+convColumns+` FROM conversations
		WHERE bot = ? AND scope = ? AND platform = ? AND room = ? AND thread = ? AND user = ?
		ORDER BY generation DESC LIMIT 1`,
		key.Bot, string(key.Scope), string(key.Room.Platform), key.Room.Room, key.Room.Thread, key.User))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, err
	}
	return db.insertConversation(t, key, 0, now)
}

func (db *DB) insertConversation(t *txn, key bridge.ConvKey, gen int, now time.Time) (bridge.Conversation, error) {
	res, err := t.exec(`INSERT INTO conversations
		(bot, scope, platform, room, thread, user, generation, active_ms, created_ms, lease)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		key.Bot, string(key.Scope), string(key.Room.Platform), key.Room.Room, key.Room.Thread, key.User, gen, ms(now), ms(now),
		bridge.LeaseOf(key.Room))
	if err != nil {
		return bridge.Conversation{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return bridge.Conversation{}, err
	}
	return bridge.Conversation{ID: id, Key: key, Generation: gen, ActiveAt: fromMS(ms(now))}, nil
}

// storedInbound returns the item stored of in's event.
func storedInbound(t *txn, in bridge.Inbound) (bridge.OutboxItem, error) {
	return scanOutboxItem(t.queryRow(`SELECT id, conversation, body, parts_sent, created_ms
		FROM inbound WHERE platform = ? AND event_key = ?`, string(in.Room.Platform), string(in.Key)))
}

// checkKey refuses keys the schema would refuse, before a transaction turns
// the refusal into a store failure.
func checkKey(key bridge.ConvKey) error {
	if !key.Scope.Valid() {
		return fmt.Errorf("conversation %s: invalid scope %q", key, key.Scope)
	}
	return nil
}

// EnqueueInbound implements bridge.Store. For a duplicate it returns the item
// stored before.
func (db *DB) EnqueueInbound(ctx context.Context, key bridge.ConvKey, in bridge.Inbound, engage bridge.RoomKey) (bridge.OutboxItem, bool, error) {
	if in.Key == "" {
		return bridge.OutboxItem{}, false, errors.New("enqueue inbound: no event key")
	}
	if err := checkKey(key); err != nil {
		return bridge.OutboxItem{}, false, fmt.Errorf("enqueue inbound: %w", err)
	}
	body, err := form.EncodeInbound(in)
	if err != nil {
		return bridge.OutboxItem{}, false, fmt.Errorf("enqueue inbound: %w", err)
	}
	now := db.Now()
	item := bridge.OutboxItem{Inbound: in, CreatedAt: fromMS(ms(now))}
	created := false
	err = db.tx(ctx, "enqueue inbound", func(t *txn) error {
		// The usual message is new, of a conversation that exists: one
		// statement stores it under the current generation.
		err := t.queryRow(`INSERT INTO inbound (platform, event_key, conversation, body, created_ms)
			SELECT ?, ?, id, ?, ? FROM conversations
			WHERE bot = ? AND scope = ? AND platform = ? AND room = ? AND thread = ? AND user = ?
			ORDER BY generation DESC LIMIT 1
			ON CONFLICT (platform, event_key) DO NOTHING RETURNING id, conversation`,
			string(in.Room.Platform), string(in.Key), body, ms(now),
			key.Bot, string(key.Scope), string(key.Room.Platform), key.Room.Room, key.Room.Thread, key.User).Scan(&item.ID, &item.Conversation)
		if errors.Is(err, sql.ErrNoRows) {
			// A duplicate, or the first message of its conversation.
			stored, err := storedInbound(t, in)
			if err == nil {
				item = stored
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			conv, err := db.currentConversation(t, key, now)
			if err != nil {
				return err
			}
			res, err := t.exec(`INSERT INTO inbound (platform, event_key, conversation, body, created_ms)
				VALUES (?, ?, ?, ?, ?)`, string(in.Room.Platform), string(in.Key), conv.ID, body, ms(now))
			if err != nil {
				return err
			}
			if item.ID, err = res.LastInsertId(); err != nil {
				return err
			}
			item.Conversation = conv.ID
		} else if err != nil {
			return err
		}
		if engage.Room != "" {
			if _, err := t.exec(`INSERT INTO threads (bot, platform, room, thread, created_ms)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				key.Bot, string(engage.Platform), engage.Room, engage.Thread, ms(now)); err != nil {
				return err
			}
		}
		if a := in.Action; a != nil {
			// An answer closes the offer it answers: it stands once. An
			// answer to a choice still being posted has no message id, as
			// its offer.
			if _, err := t.exec(`DELETE FROM offers WHERE platform = ? AND room = ? AND thread = ? AND message_id = ?`,
				string(in.Room.Platform), in.Room.Room, in.Room.Thread, a.MessageID); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return bridge.OutboxItem{}, false, err
	}
	return item, created, nil
}

// ThreadEngaged implements bridge.Store.
func (db *DB) ThreadEngaged(ctx context.Context, bot string, thread bridge.RoomKey) (bool, error) {
	var one int
	err := db.queryRow(ctx, `SELECT 1 FROM threads WHERE bot = ? AND platform = ? AND room = ? AND thread = ?`,
		bot, string(thread.Platform), thread.Room, thread.Thread).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap("thread engaged", err)
	}
	return true, nil
}

// ResetConversation implements bridge.Store. A key without a conversation
// gets its first generation.
func (db *DB) ResetConversation(ctx context.Context, key bridge.ConvKey, in bridge.Inbound, notice bridge.Delivery) (bridge.Delivery, bool, error) {
	if in.Key == "" {
		return notice, false, errors.New("reset conversation: no event key")
	}
	if err := checkKey(key); err != nil {
		return notice, false, fmt.Errorf("reset conversation: %w", err)
	}
	body, err := form.EncodeInbound(in)
	if err != nil {
		return notice, false, fmt.Errorf("reset conversation: %w", err)
	}
	created := false
	err = db.tx(ctx, "reset conversation", func(t *txn) error {
		var one int
		err := t.queryRow(`SELECT 1 FROM inbound WHERE platform = ? AND event_key = ?`,
			string(in.Room.Platform), string(in.Key)).Scan(&one)
		if err == nil {
			return nil // handled before
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var gen int
		err = t.queryRow(`SELECT coalesce(max(generation) + 1, 0) FROM conversations
			WHERE bot = ? AND scope = ? AND platform = ? AND room = ? AND thread = ? AND user = ?`,
			key.Bot, string(key.Scope), string(key.Room.Platform), key.Room.Room, key.Room.Thread, key.User).Scan(&gen)
		if err != nil {
			return err
		}
		now := db.Now()
		c, err := db.insertConversation(t, key, gen, now)
		if err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO inbound (platform, event_key, conversation, body, state, created_ms, done_ms)
			VALUES (?, ?, ?, ?, 'sent', ?, ?)`, string(in.Room.Platform), string(in.Key), c.ID, body, ms(now), ms(now)); err != nil {
			return err
		}
		notice.Conversation = c.ID
		if notice, _, err = db.insertDelivery(t, notice, false); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return notice, false, err
	}
	return notice, created, nil
}

// Conversation implements bridge.Store.
func (db *DB) Conversation(ctx context.Context, id int64) (bridge.Conversation, error) {
	c, err := scanConversation(db.queryRow(ctx, `SELECT `+convColumns+` FROM conversations WHERE id = ?`, id))
	if err != nil {
		return c, wrap(fmt.Sprintf("conversation %d", id), err)
	}
	return c, nil
}

// ConversationByChatID implements bridge.Store.
func (db *DB) ConversationByChatID(ctx context.Context, bot string, id chat.ConversationID) (bridge.Conversation, error) {
	// chat_id <> '' keeps unmapped conversations out and lets SQLite use the
	// partial index conversations_chat, which a bound parameter alone cannot.
	c, err := scanConversation(db.queryRow(ctx, `SELECT `+convColumns+` FROM conversations
		WHERE bot = ? AND chat_id = ? AND chat_id <> '' ORDER BY id DESC LIMIT 1`, bot, string(id)))
	if err != nil {
		return c, wrap("conversation by chat id", err)
	}
	return c, nil
}

// SetConversationChatID implements bridge.Store.
func (db *DB) SetConversationChatID(ctx context.Context, id int64, chatID chat.ConversationID) error {
	return db.tx(ctx, "set conversation chat id", func(t *txn) error {
		if err := fenced(t, conversationLease, id); err != nil {
			return err
		}
		res, err := t.exec(`UPDATE conversations SET chat_id = ? WHERE id = ?`, string(chatID), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("conversation %d: %w", id, bridge.ErrNotFound)
		}
		_, err = t.exec(`DELETE FROM participants WHERE conversation = ?`, id)
		return err
	})
}

// ActiveConversations implements bridge.Store.
func (db *DB) ActiveConversations(ctx context.Context, since time.Time) ([]bridge.Conversation, error) {
	// A UNION of two index searches: with OR, or without INDEXED BY, SQLite
	// scans every conversation ever made.
	rows, err := db.query(ctx, `SELECT `+convColumns+` FROM conversations INDEXED BY conversations_active
		WHERE chat_id <> '' AND active_ms >= ?
		UNION
		SELECT `+convColumns+` FROM conversations
		WHERE chat_id <> '' AND id IN (SELECT conversation FROM deliveries WHERE state = 'pending')
		ORDER BY id`, ms(since))
	if err != nil {
		return nil, wrap("active conversations", err)
	}
	defer rows.Close()
	var out []bridge.Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, wrap("active conversations", err)
		}
		out = append(out, c)
	}
	return out, wrap("active conversations", rows.Err())
}

// Participant implements bridge.Store.
func (db *DB) Participant(ctx context.Context, conversation int64, user chat.UserID) (bool, error) {
	var one int
	err := db.queryRow(ctx, `SELECT 1 FROM participants WHERE conversation = ? AND chat_user = ?`,
		conversation, string(user)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap("participant", err)
	}
	return true, nil
}

// AddParticipant implements bridge.Store.
func (db *DB) AddParticipant(ctx context.Context, conversation int64, user chat.UserID) error {
	return db.tx(ctx, "add participant", func(t *txn) error {
		if err := fenced(t, conversationLease, conversation); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO participants (conversation, chat_user) VALUES (?, ?)
			ON CONFLICT DO NOTHING`, conversation, string(user))
		return err
	})
}
