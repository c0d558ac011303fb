package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// User implements bridge.Store.
func (db *DB) User(ctx context.Context, bot string, platform bridge.Platform, platformID string) (bridge.User, error) {
	scan := func(row pgx.Row) (bridge.User, error) {
		u := bridge.User{Bot: bot, Platform: platform, PlatformID: platformID}
		var chatID, key string
		err := row.Scan(&chatID, &key, &u.Name, &u.AvatarURL)
		u.ChatID, u.Key = chat.UserID(chatID), chat.UserKey(key)
		return u, err
	}
	return queryRow(ctx, db, "user", scan, `SELECT chat_id, user_key, name, avatar_url FROM users
		WHERE bot = $1 AND platform = $2 AND platform_id = $3`, bot, string(platform), platformID)
}

// PutUser implements bridge.Store. The user key, kept for bots without an
// encryption key, is stored as the SQLite store stores it: as it is, in a
// database only botbridge's user should read.
func (db *DB) PutUser(ctx context.Context, u bridge.User) error {
	if u.ChatID == "" {
		return errors.New("put user: no chat user id")
	}
	_, err := db.exec(ctx, "put user", `INSERT INTO users (bot, platform, platform_id, chat_id, user_key, name, avatar_url, updated_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (bot, platform, platform_id) DO UPDATE SET chat_id = excluded.chat_id, user_key = excluded.user_key,
			name = excluded.name, avatar_url = excluded.avatar_url, updated_ms = excluded.updated_ms`,
		u.Bot, string(u.Platform), u.PlatformID, string(u.ChatID), string(u.Key), Storable(u.Name), Storable(u.AvatarURL), ms(db.Now()))
	return err
}

// DeleteUser implements bridge.Store.
func (db *DB) DeleteUser(ctx context.Context, bot string, platform bridge.Platform, platformID string) error {
	_, err := db.exec(ctx, "delete user", `WITH gone AS (
		DELETE FROM users WHERE bot = $1 AND platform = $2 AND platform_id = $3 RETURNING chat_id
	)
	DELETE FROM participants WHERE chat_user IN (SELECT chat_id FROM gone)
		AND conversation IN (SELECT id FROM conversations WHERE bot = $1)`, bot, string(platform), platformID)
	return err
}

// Cursor implements bridge.Store.
func (db *DB) Cursor(ctx context.Context, name string) (string, error) {
	v, err := queryRow(ctx, db, "cursor "+name, scanOne[string], `SELECT value FROM cursors WHERE name = $1`, name)
	if errors.Is(err, bridge.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// SetCursor implements bridge.Store. With a fence in ctx, it writes only
// while the fence's own lease is held with its token.
func (db *DB) SetCursor(ctx context.Context, name, value string) error {
	if f, ok := bridge.FenceFrom(ctx); ok {
		return db.fencedExec(ctx, "set cursor "+name, `INSERT INTO cursors (name, value, updated_ms)
			SELECT $3, $4, $5::bigint WHERE (SELECT held FROM fence)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms RETURNING 1`,
			f.Lease, name, value, ms(db.Now()))
	}
	_, err := db.exec(ctx, "set cursor "+name, setCursorSQL, name, value, ms(db.Now()))
	return err
}

const setCursorSQL = `INSERT INTO cursors (name, value, updated_ms) VALUES ($1, $2, $3)
	ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms`
