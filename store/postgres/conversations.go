package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

const convColumns = `id, bot, scope, platform, room, thread, "user", generation, chat_id,
	reply_room, reply_thread, reply_message, reply_user, cursor_ms, active_ms, reply_ephemeral`

func scanConversation(row pgx.Row) (bridge.Conversation, error) {
	var (
		c                   bridge.Conversation
		scope, platform     string
		replyRoom, replyThr string
		chatID              string
		cursorMS, activeMS  int64
	)
	err := row.Scan(&c.ID, &c.Key.Bot, &scope, &platform, &c.Key.Room.Room, &c.Key.Room.Thread, &c.Key.User,
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

// Conversation implements bridge.Store.
func (db *DB) Conversation(ctx context.Context, id int64) (bridge.Conversation, error) {
	return queryRow(ctx, db, fmt.Sprintf("conversation %d", id), scanConversation,
		`SELECT `+convColumns+` FROM conversations WHERE id = $1`, id)
}

// ConversationByChatID implements bridge.Store.
func (db *DB) ConversationByChatID(ctx context.Context, bot string, id chat.ConversationID) (bridge.Conversation, error) {
	// chat_id <> '' keeps unmapped conversations out and matches the
	// partial index conversations_chat.
	return queryRow(ctx, db, "conversation by chat id", scanConversation, `SELECT `+convColumns+` FROM conversations
		WHERE bot = $1 AND chat_id = $2 AND chat_id <> '' ORDER BY id DESC LIMIT 1`, bot, string(id))
}

// SetConversationChatID implements bridge.Store.
func (db *DB) SetConversationChatID(ctx context.Context, id int64, chatID chat.ConversationID) error {
	f, err := queryRow(ctx, db, "set conversation chat id", scanFenced, `WITH `+fenceCTE(conversationLease, 3)+`, conv AS (
		UPDATE conversations SET chat_id = $2 WHERE id = $1 AND (SELECT held FROM fence) RETURNING id
	), forgotten AS (
		DELETE FROM participants WHERE conversation IN (SELECT id FROM conv)
	)
	SELECT `+fenceColumns+`, (SELECT count(*) FROM conv)`, id, string(chatID), token(ctx))
	if err != nil {
		return err
	}
	if err := fenceResult(fmt.Sprintf("set conversation chat id: conversation %d", id), f.held, f.found); err != nil {
		return err
	}
	if f.n == 0 {
		return fmt.Errorf("set conversation chat id: conversation %d: %w", id, bridge.ErrNotFound)
	}
	return nil
}

// ActiveConversations implements bridge.Store.
func (db *DB) ActiveConversations(ctx context.Context, since time.Time) ([]bridge.Conversation, error) {
	// A UNION of two index searches: with OR, PostgreSQL scans every
	// conversation ever made.
	return queryRows(ctx, db, "active conversations", scanConversation, `SELECT `+convColumns+` FROM conversations
		WHERE chat_id <> '' AND active_ms >= $1
		UNION
		SELECT `+convColumns+` FROM conversations
		WHERE chat_id <> '' AND id IN (SELECT conversation FROM deliveries WHERE state = 'pending')
		ORDER BY id`, ms(since))
}

// Participant implements bridge.Store.
func (db *DB) Participant(ctx context.Context, conversation int64, user chat.UserID) (bool, error) {
	return queryRow(ctx, db, "participant", scanOne[bool],
		`SELECT EXISTS (SELECT 1 FROM participants WHERE conversation = $1 AND chat_user = $2)`, conversation, string(user))
}

// AddParticipant implements bridge.Store.
func (db *DB) AddParticipant(ctx context.Context, conversation int64, user chat.UserID) error {
	f, err := queryRow(ctx, db, "add participant", scanFenced, `WITH `+fenceCTE(conversationLease, 3)+`, added AS (
		INSERT INTO participants (conversation, chat_user) SELECT $1::bigint, $2::text WHERE (SELECT held FROM fence)
		ON CONFLICT DO NOTHING RETURNING 1
	)
	SELECT `+fenceColumns+`, (SELECT count(*) FROM added)`, conversation, string(user), token(ctx))
	if err != nil {
		return err
	}
	if !f.found {
		// The foreign key's refusal, as without a fence.
		return fmt.Errorf("add participant: conversation %d: %w: it refers to a record that does not exist", conversation, bridge.ErrNotFound)
	}
	return fenceResult("add participant", f.held, f.found)
}
