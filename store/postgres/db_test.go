package postgres_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/migrations"
	pgmigrations "github.com/botbridge/botbridge/migrations/postgres"
	"github.com/botbridge/botbridge/store"
	"github.com/botbridge/botbridge/store/postgres"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

func migrationCount(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(pgmigrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	return len(files)
}

// schema describes the tables, columns and indexes of the database.
func schema(t *testing.T, dsn string) string {
	t.Helper()
	var s string
	err := rawPool(t, dsn).QueryRow(t.Context(), `SELECT string_agg(d, E'\n' ORDER BY d) FROM (
		SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') AS d
		FROM information_schema.columns WHERE table_schema = 'public'
		UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public') x`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpen(t *testing.T) {
	t.Run("a new database is migrated, and every migration recorded", func(t *testing.T) {
		dsn := pg.DSN(t)
		db := open(t, dsn)
		if v, err := db.SchemaVersion(t.Context()); err != nil || v != migrationCount(t) {
			t.Errorf("schema version = %d, %v; want %d", v, err, migrationCount(t))
		}
		var names string
		if err := rawPool(t, dsn).QueryRow(t.Context(), "SELECT string_agg(version || ' ' || name, ',' ORDER BY version) FROM schema_version").Scan(&names); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(names, "1 0001_initial.sql,2 0002_core_parts.sql") {
			t.Errorf("schema_version rows = %s", names)
		}
	})

	t.Run("a second open migrates nothing and keeps the data", func(t *testing.T) {
		dsn := pg.DSN(t)
		db, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		key := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}}
		it, _, err := db.EnqueueInbound(t.Context(), key, bridge.Inbound{Key: "ev1", Room: key.Room, Text: "hi"}, bridge.RoomKey{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SetCursor(t.Context(), "matrix.next_batch", "s42"); err != nil {
			t.Fatal(err)
		}
		before := schema(t, dsn)
		db.Close()

		db = open(t, dsn)
		if after := schema(t, dsn); after != before {
			t.Errorf("schema changed on second open:\nbefore %s\nafter  %s", before, after)
		}
		if got, err := db.NextInbound(t.Context(), it.Conversation); err != nil || got.ID != it.ID {
			t.Errorf("NextInbound = %d, %v; want %d", got.ID, err, it.ID)
		}
		if v, err := db.Cursor(t.Context(), "matrix.next_batch"); err != nil || v != "s42" {
			t.Errorf("cursor = %q, %v; want s42", v, err)
		}
	})

	t.Run("replicas starting at once migrate once", func(t *testing.T) {
		dsn := pg.DSN(t)
		const replicas = 8
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		for i := range replicas {
			wg.Go(func() {
				<-start
				db, err := postgres.Open(t.Context(), dsn)
				if err == nil {
					db.Close()
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}
		var rows int
		if err := rawPool(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM schema_version").Scan(&rows); err != nil || rows != migrationCount(t) {
			t.Errorf("schema_version has %d rows, %v; want %d", rows, err, migrationCount(t))
		}
	})

	t.Run("the lock is released after migrating", func(t *testing.T) {
		dsn := pg.DSN(t)
		open(t, dsn) // keeps its pool, and the connection that migrated, open
		var held int
		if err := rawPool(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").Scan(&held); err != nil || held != 0 {
			t.Errorf("%d advisory locks held after Open, %v", held, err)
		}
	})
}

// TestSchemaMirrorsSQLite checks that both stores have the same migrations
// and the same tables and columns, which botbridge migrate-store copies one
// by one.
func TestSchemaMirrorsSQLite(t *testing.T) {
	sqliteFiles, _ := fs.Glob(migrations.FS, "*.sql")
	pgFiles, _ := fs.Glob(pgmigrations.FS, "*.sql")
	if !slices.Equal(sqliteFiles, pgFiles) {
		t.Errorf("migrations differ:\nSQLite     %v\nPostgreSQL %v\nevery SQLite migration needs its PostgreSQL twin, of the same name, in migrations/postgres", sqliteFiles, pgFiles)
	}

	lite, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	liteSQL, err := lite.SQL()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := liteSQL.QueryContext(t.Context(), `SELECT m.name || '.' || p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		want = append(want, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	dsn := pg.DSN(t)
	open(t, dsn)
	pgRows, err := rawPool(t, dsn).Query(t.Context(), `SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name <> 'schema_version' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for pgRows.Next() {
		var c string
		if err := pgRows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	if err := pgRows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("columns differ:\nSQLite     %v\nPostgreSQL %v", want, got)
	}
}

func TestOpenErrors(t *testing.T) {
	admin := rawPool(t, pg.Admin(t))
	ctx := t.Context()
	exec := func(t *testing.T, dsn, sql string) {
		t.Helper()
		if _, err := rawPool(t, dsn).Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	withUser := func(dsn, user string) string {
		return strings.Replace(dsn, "postgres://postgres@", "postgres://"+user+"@", 1)
	}
	for _, tc := range []struct {
		name string
		// dsn returns the connection string to open.
		dsn  func(t *testing.T) string
		want []string
	}{{
		name: "no dsn",
		dsn:  func(*testing.T) string { return "" },
		want: []string{"set store.dsn"},
	}, {
		name: "a dsn that does not parse",
		dsn:  func(*testing.T) string { return "postgres://u:secret@host:notaport/db" },
		want: []string{"store.dsn"},
	}, {
		name: "nothing listening",
		dsn: func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			return "postgres://u:secret@127.0.0.1:" + strconv.Itoa(port) + "/db?connect_timeout=5"
		},
		want: []string{"connection refused", "check that PostgreSQL runs", "store.dsn"},
	}, {
		name: "a database that does not exist",
		dsn: func(t *testing.T) string {
			dsn := pg.DSN(t)
			return strings.Replace(dsn, "/botbridge_test_", "/missing_", 1)
		},
		want: []string{"does not exist", "createdb", "store.dsn"},
	}, {
		name: "a user that does not exist",
		dsn:  func(t *testing.T) string { return withUser(pg.DSN(t), "nobody_here") },
		want: []string{"refused the user", "store.dsn", "${VAR}"},
	}, {
		name: "a user without the right to create tables",
		dsn: func(t *testing.T) string {
			dsn := pg.DSN(t)
			role := "reader_" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
			return withUser(dsn, role)
		},
		want: []string{"lacks a privilege", "owner"},
	}, {
		name: "a read-only server",
		dsn: func(t *testing.T) string {
			dsn := pg.DSN(t)
			open(t, dsn).Close()
			exec(t, dsn, "ALTER DATABASE "+dbName(dsn)+" SET default_transaction_read_only = on")
			return dsn
		},
		want: []string{"read-only", "primary"},
	}, {
		name: "a schema of a newer botbridge",
		dsn: func(t *testing.T) string {
			dsn := pg.DSN(t)
			open(t, dsn).Close()
			exec(t, dsn, "INSERT INTO schema_version VALUES (999, '0999_future.sql', 0)")
			return dsn
		},
		want: []string{"schema version 999", "newer botbridge", "restore a backup"},
	}} {
		t.Run(tc.name+" fails clearly", func(t *testing.T) {
			dsn := tc.dsn(t)
			db, err := postgres.Open(ctx, dsn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, bridge.ErrStore) {
				t.Errorf("error does not wrap ErrStore: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// dbName returns the database of a URL connection string.
func dbName(dsn string) string {
	name := dsn[strings.LastIndex(dsn, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	return name
}

func TestStats(t *testing.T) {
	db := open(t, pg.DSN(t))
	ctx := t.Context()
	if s, err := db.Stats(ctx); err != nil || s != (postgres.Stats{}) {
		t.Fatalf("empty store stats = %+v, %v", s, err)
	}
	key := bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "D1"}, User: "U1"}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db.Now = func() time.Time { return first }
	it, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "e1", Room: key.Room, Time: first}, bridge.RoomKey{})
	if err != nil {
		t.Fatal(err)
	}
	db.Now = func() time.Time { return first.Add(time.Minute) }
	if _, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "e2", Room: key.Room, Time: first}, bridge.RoomKey{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddDelivery(ctx, bridge.Delivery{MessageID: "m1", Conversation: it.Conversation, Payload: chat.Text{Text: "x"},
		Target: bridge.ReplyTarget{Room: key.Room}}); err != nil {
		t.Fatal(err)
	}
	s, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := postgres.Stats{PendingInbound: 2, OldestInbound: first, PendingDeliveries: 1, OldestDelivery: first.Add(time.Minute)}
	if s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	// The service reads both stores' stats as store.Stats.
	_ = store.Stats(s)
}

func TestPingWritesAHeartbeat(t *testing.T) {
	db := open(t, pg.DSN(t))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Cursor(t.Context(), "store.heartbeat"); err != nil || v != strconv.FormatInt(now.UnixMilli(), 10) {
		t.Errorf("heartbeat = %q, %v", v, err)
	}
}

// TestTextsPostgreSQLCannotHold stores texts kept for people that hold what
// a PostgreSQL text cannot (NUL, invalid UTF-8), which SQLite keeps as they
// are: they are stored with U+FFFD in place rather than failing the write.
func TestTextsPostgreSQLCannotHold(t *testing.T) {
	dsn := pg.DSN(t)
	db := open(t, dsn)
	ctx := t.Context()
	key := bridge.ConvKey{Bot: "b", Scope: bridge.ScopeRoom, Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:hs"}}
	it, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "e1", Room: key.Room, Text: "a\x00b"}, bridge.RoomKey{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.NextInbound(ctx, it.Conversation); err != nil || got.Inbound.Text != "a\x00b" {
		t.Errorf("text = %q, %v; want it as sent (the body is JSON)", got.Inbound.Text, err)
	}
	if err := db.FailInbound(ctx, it.ID, "bad \x00 byte \xff"); err != nil {
		t.Errorf("FailInbound: %v", err)
	}
	var reason string
	if err := rawPool(t, dsn).QueryRow(ctx, "SELECT error FROM inbound WHERE id = $1", it.ID).Scan(&reason); err != nil || reason != "bad \uFFFD byte \uFFFD" {
		t.Errorf("reason = %q, %v", reason, err)
	}
	u := bridge.User{Bot: "b", Platform: bridge.PlatformMatrix, PlatformID: "@a:hs", ChatID: "user_1", Name: "Ada\x00"}
	if err := db.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if got, err := db.User(ctx, "b", bridge.PlatformMatrix, "@a:hs"); err != nil || got.Name != "Ada\uFFFD" {
		t.Errorf("name = %q, %v", got.Name, err)
	}
}

func TestStoppedServer(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.Admin(t)) // the server's own database: nothing to drop after the stop
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	err := db.Ping(t.Context())
	if !errors.Is(err, bridge.ErrStore) || !strings.Contains(err.Error(), "check that PostgreSQL runs") {
		t.Errorf("Ping with the server stopped: %v; want ErrStore saying to check that PostgreSQL runs", err)
	}
}

// TestPostsOfRepliesBeforeTheMigration checks that migration 0004 fills
// posts with the replies posted before it (the contract suite checks Post
// itself).
func TestPostsOfRepliesBeforeTheMigration(t *testing.T) {
	dsn := pg.DSN(t)
	raw := rawPool(t, dsn)
	ctx := t.Context()
	if _, err := raw.Exec(ctx, `CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(pgmigrations.FS, "*.sql")
	slices.Sort(files)
	for i, f := range files {
		if f >= "0004" {
			break
		}
		body, _ := fs.ReadFile(pgmigrations.FS, f)
		if _, err := raw.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := raw.Exec(ctx, "INSERT INTO schema_version VALUES ($1, $2, 1)", i+1, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(ctx, `INSERT INTO conversations (id, bot, scope, platform, room, active_ms, created_ms) VALUES (7, 'bot', 'room', 'slack', 'C1', 1, 1);
		INSERT INTO deliveries (message_id, conversation, bot, platform, room, payload, state, platform_id, created_ms, received_ms)
		VALUES ('msg_old', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '["1600.1","1600.2"]', 1, 1),
		       -- the form before parts were explicit, which the migration must get past
		       ('msg_legacy', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '1500.1', 1, 1),
		       -- a part posted again later: the later delivery's
		       ('msg_again', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '["1600.2","",""]', 1, 1),
		       ('msg_failed', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'failed', '["1600.3"]', 1, 1);`); err != nil {
		t.Fatal(err)
	}
	db := open(t, dsn)
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}
	for part, want := range map[string]chat.MessageID{"1600.1": "msg_old", "1600.2": "msg_again"} {
		if p, err := db.Post(ctx, room, part); err != nil || p.MessageID != want || p.Conversation != 7 {
			t.Errorf("Post(%s) = %+v, %v; want %s", part, p, err, want)
		}
	}
	for _, part := range []string{"1500.1", "1600.3", ""} {
		if _, err := db.Post(ctx, room, part); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("Post(%q): %v, want ErrNotFound", part, err)
		}
	}
}

// TestLeasesOfConversationsBeforeTheMigration checks that migration 0006
// gives the conversations made before it the lease of their room (the
// contract suite checks the conversations made after it).
func TestLeasesOfConversationsBeforeTheMigration(t *testing.T) {
	dsn := pg.DSN(t)
	raw := rawPool(t, dsn)
	ctx := t.Context()
	if _, err := raw.Exec(ctx, `CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(pgmigrations.FS, "*.sql")
	slices.Sort(files)
	for i, f := range files {
		if f >= "0006" {
			break
		}
		body, _ := fs.ReadFile(pgmigrations.FS, f)
		if _, err := raw.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := raw.Exec(ctx, "INSERT INTO schema_version VALUES ($1, $2, 1)", i+1, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(ctx, `INSERT INTO conversations (id, bot, scope, platform, room, generation, active_ms, created_ms) VALUES
		(7, 'bot', 'room', 'slack', 'C1', 0, 1, 1), (8, 'bot', 'room', 'slack', 'C1', 1, 1, 1),
		(9, 'bot', 'room', 'slack', 'C2', 0, 1, 1), (10, 'bot', 'room', 'matrix', '!r:hs', 0, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	open(t, dsn)
	for id, room := range map[int64]bridge.RoomKey{
		7: {Platform: bridge.PlatformSlack, Room: "C1"}, 8: {Platform: bridge.PlatformSlack, Room: "C1"},
		9: {Platform: bridge.PlatformSlack, Room: "C2"}, 10: {Platform: bridge.PlatformMatrix, Room: "!r:hs"},
	} {
		var lease string
		if err := raw.QueryRow(ctx, `SELECT lease FROM conversations WHERE id = $1`, id).Scan(&lease); err != nil {
			t.Fatal(err)
		}
		if want := bridge.LeaseOf(room); lease != want {
			t.Errorf("conversation %d of %s has lease %q, want %q", id, room, lease, want)
		}
	}
}
