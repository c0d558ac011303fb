package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// User implements bridge.Store.
func (db *DB) User(ctx context.Context, bot string, platform bridge.Platform, platformID string) (bridge.User, error) {
	u := bridge.User{Bot: bot, Platform: platform, PlatformID: platformID}
	var chatID, key string
	err := db.queryRow(ctx, `SELECT chat_id, user_key, name, avatar_url FROM users
		WHERE bot = ? AND platform = ? AND platform_id = ?`, bot, string(platform), platformID).
		Scan(&chatID, &key, &u.Name, &u.AvatarURL)
	if err != nil {
		return u, wrap("user", err)
	}
	u.ChatID, u.Key = chat.UserID(chatID), chat.UserKey(key)
	return u, nil
}

// PutUser implements bridge.Store.
func (db *DB) PutUser(ctx context.Context, u bridge.User) error {
	if u.ChatID == "" {
		return errors.New("put user: no chat user id")
	}
	return db.tx(ctx, "put user", func(t *txn) error {
		_, err := t.exec(`INSERT INTO users (bot, platform, platform_id, chat_id, user_key, name, avatar_url, updated_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (bot, platform, platform_id) DO UPDATE SET chat_id = excluded.chat_id, user_key = excluded.user_key,
				name = excluded.name, avatar_url = excluded.avatar_url, updated_ms = excluded.updated_ms`,
			u.Bot, string(u.Platform), u.PlatformID, string(u.ChatID), string(u.Key), u.Name, u.AvatarURL, ms(db.Now()))
		return err
	})
}

// DeleteUser implements bridge.Store.
func (db *DB) DeleteUser(ctx context.Context, bot string, platform bridge.Platform, platformID string) error {
	return db.tx(ctx, "delete user", func(t *txn) error {
		var chatID string
		err := t.queryRow(`DELETE FROM users WHERE bot = ? AND platform = ? AND platform_id = ? RETURNING chat_id`,
			bot, string(platform), platformID).Scan(&chatID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = t.exec(`DELETE FROM participants WHERE chat_user = ?
			AND conversation IN (SELECT id FROM conversations WHERE bot = ?)`, chatID, bot)
		return err
	})
}

// Cursor implements bridge.Store.
func (db *DB) Cursor(ctx context.Context, name string) (string, error) {
	var v string
	err := db.queryRow(ctx, `SELECT value FROM cursors WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, wrap("cursor "+name, err)
}

// SetCursor implements bridge.Store. With a fence in ctx, it writes only
// while the fence's own lease is held with its token.
func (db *DB) SetCursor(ctx context.Context, name, value string) error {
	return db.tx(ctx, "set cursor "+name, func(t *txn) error {
		if f, ok := bridge.FenceFrom(ctx); ok {
			if err := fenced(t, namedLease, f.Lease); err != nil {
				return err
			}
		}
		_, err := t.exec(setCursorSQL, name, value, ms(db.Now()))
		return err
	})
}

const setCursorSQL = `INSERT INTO cursors (name, value, updated_ms) VALUES (?, ?, ?)
	ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms`
