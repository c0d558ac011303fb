package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
	"github.com/botbridge/botbridge/store/postgres"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

func TestStoreConfig(t *testing.T) {
	const bots = "bots:\n  - name: b\n    webhook_id: abc\n"
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string // in the error; "" for none
		check      func(t *testing.T, c StoreConfig)
	}{{
		name:  "sqlite is the default",
		yaml:  bots,
		check: func(t *testing.T, c StoreConfig) { eq(t, c.Driver, "sqlite") },
	}, {
		name: "postgres with the password from the environment",
		yaml: bots + "store:\n  driver: postgres\n  dsn: postgres://bb:${PW}@db:5432/bridge\n",
		env:  map[string]string{"PW": "s3cret"},
		check: func(t *testing.T, c StoreConfig) {
			eq(t, c.Driver, "postgres")
			eq(t, c.DSN, "postgres://bb:s3cret@db:5432/bridge")
		},
	}, {
		name: "an unknown driver",
		yaml: bots + "store:\n  driver: mysql\n",
		want: `store.driver: "mysql" is not sqlite or postgres`,
	}, {
		name: "postgres without a dsn",
		yaml: bots + "store:\n  driver: postgres\n",
		want: "store.dsn: must be set with store.driver postgres",
	}, {
		name: "postgres with a password variable not set",
		yaml: bots + "store:\n  driver: postgres\n  dsn: postgres://bb:${PW}@db/bridge\n",
		want: "store.dsn: environment variable PW is not set",
	}, {
		name: "postgres with a size cap",
		yaml: bots + "store:\n  driver: postgres\n  dsn: postgres://db/bridge\n  max_size_mb: 100\n",
		want: "store.max_size_mb: applies to store.driver sqlite only",
	}, {
		name:  "postgres with Matrix",
		yaml:  bots + "store:\n  driver: postgres\n  dsn: postgres://db/bridge\nmatrix:\n  homeserver_url: https://hs.example.org\n  user_id: '@bot:example.org'\n  access_token: t\n",
		check: func(t *testing.T, s StoreConfig) { eq(t, s.Driver, DriverPostgres) },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(strings.NewReader(tc.yaml), env(tc.env))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v; want one saying %q", err, tc.want)
			}
			if tc.check != nil {
				tc.check(t, cfg.Store)
			}
		})
	}
}

func eq(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestOnPostgres runs the service and migrate-store on a throwaway
// PostgreSQL.
func TestOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)

	t.Run("the service answers with its state in PostgreSQL", func(t *testing.T) {
		cfg := defaults()
		cfg.Store = StoreConfig{Driver: DriverPostgres, DSN: pg.DSN(t)}
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.HTTP.AdminAddr = "127.0.0.1:0"
		cfg.Bots = []BotConfig{{Name: "b", URL: startEmulator(t)}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		ad := bridgetest.NewAdapter(bridge.PlatformConsole)
		svc, err := NewService(t.Context(), cfg, testLog(t), ad)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			svc.Close()
		}()
		if _, ok := svc.Store.(pgStore); !ok {
			t.Fatalf("the service runs on %T, want the PostgreSQL store", svc.Store)
		}
		wait, stop := context.WithTimeout(ctx, 20*time.Second)
		defer stop()
		in := bridge.Inbound{Key: "k1", Room: bridge.RoomKey{Platform: bridge.PlatformConsole, Room: "console"}, DM: true,
			Sender: bridge.Sender{ID: "me"}, Text: "hello postgres", Time: time.Now()}
		if err := ad.Say(wait, in); err != nil {
			t.Fatal(err)
		}
		posts, err := ad.WaitPosts(wait, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(fmt.Sprint(posts[0].Payload()), "hello postgres") {
			t.Errorf("posted %+v; want the echo of the message", posts[0].Payload())
		}
		if err := svc.Engine.WaitIdle(wait, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		code, body := get(t, "http://"+svc.AdminAddr()+"/readyz")
		if code != 200 || !strings.Contains(body, `"store":"ok"`) {
			t.Errorf("/readyz: %d %s", code, body)
		}
		_, body = get(t, "http://"+svc.AdminAddr()+"/metrics")
		for _, want := range []string{"botbridge_outbox_pending 0", "botbridge_deliveries_pending 0", "botbridge_store_up 1"} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("migrate-store copies every row of a SQLite store", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "b.db")
		fillSQLite(t, path)
		dsn := pg.DSN(t)
		code, out, errOut := runMain(t, "", "migrate-store", "-from", "sqlite:"+path, "-to", "postgres:"+dsn)
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		for _, want := range []string{"copied " + path, "conversations 4", "inbound 8", "deliveries 5", "users 2",
			"participants 2", "threads 1", "cursors 2", "offers 1", "indicators 1", "posts 2", "matrix_pending 1",
			"workspaces 1", "1 texts held NUL"} {
			if !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		}
		compareTables(t, path, dsn)

		// The copy is a working store: what the bridge reads is the same,
		// and new rows take ids after the copied ones.
		lite, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer lite.Close()
		db, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx := t.Context()
		for name, read := range map[string]func(Store) (any, error){
			"PendingInbound":    func(s Store) (any, error) { return s.PendingInbound(ctx, 0) },
			"PendingDeliveries": func(s Store) (any, error) { return s.PendingDeliveries(ctx, 0) },
			"Conversation":      func(s Store) (any, error) { return s.Conversation(ctx, 2) },
			"User":              func(s Store) (any, error) { return s.User(ctx, "b", bridge.PlatformSlack, "U1") },
			"Indicators":        func(s Store) (any, error) { return s.Indicators(ctx) },
			"Delivery":          func(s Store) (any, error) { return s.Delivery(ctx, "m-posted") },
			"Post": func(s Store) (any, error) {
				return s.Post(ctx, bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}, "1.3")
			},
			"Workspaces": func(s Store) (any, error) { return s.Workspaces(ctx, bridge.PlatformSlack) },
			"MatrixPending": func(s Store) (any, error) {
				var events []string
				err := s.MatrixPending(ctx, "@bot:hs", func(id, event string, since time.Time) error {
					events = append(events, fmt.Sprint(id, event, since))
					return nil
				})
				return events, err
			},
		} {
			want, err := read(lite)
			if err != nil {
				t.Fatalf("%s on SQLite: %v", name, err)
			}
			got, err := read(pgStore{db})
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s on PostgreSQL:\n got %+v, %v\nwant %+v", name, got, err, want)
			}
		}
		key := bridge.ConvKey{Bot: "b", Scope: bridge.ScopeRoom, Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C9"}}
		it, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "new", Room: key.Room}, bridge.RoomKey{})
		if err != nil || it.ID != 9 || it.Conversation != 5 {
			t.Errorf("new item %d in conversation %d, %v; want 9 in 5, after the copied ids", it.ID, it.Conversation, err)
		}
		d, _, err := db.AddDelivery(ctx, bridge.Delivery{MessageID: "m-new", Conversation: it.Conversation, Payload: chat.Text{Text: "x"}})
		if err != nil || d.Seq != 6 {
			t.Errorf("new delivery seq %d, %v; want 6", d.Seq, err)
		}
		if err := db.AddMatrixPending(ctx, "@bot:hs", "!r:hs", "$new", "@ann:hs", "{}", time.Now()); err != nil {
			t.Errorf("new waiting Matrix event: %v", err)
		}

		code, out, errOut = runMain(t, "", "migrate-store", "-from", "sqlite:"+path, "-to", "postgres:"+dsn)
		if code != 1 || !strings.Contains(errOut, "not empty") {
			t.Errorf("into a database with rows: exit %d, %s%s; want exit 1 saying it is not empty", code, out, errOut)
		}
	})

	t.Run("migrate-store refuses what it cannot copy", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.db")
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"-from", "sqlite:" + missing, "-to", "postgres:" + pg.DSN(t)}, 1, "no such file"},
			{[]string{"-from", missing, "-to", "postgres:x"}, exitUsage, "-from: want sqlite:FILE"},
			{[]string{"-from", "sqlite:" + missing, "-to", "mysql:x"}, exitUsage, "-to: want postgres:DSN"},
		} {
			code, out, errOut := runMain(t, "", append([]string{"migrate-store"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("%v: exit %d, %s%s; want exit %d saying %q", tc.args, code, out, errOut, tc.code, tc.want)
			}
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Errorf("migrate-store made %s: %v", missing, err)
		}
	})
}

// fillSQLite makes a SQLite store with rows in every table: 4
// conversations (one a reset, one replying privately), 8 inbound messages
// (pending, sent, failed with a NUL in its reason, the reset, a private
// command, a reaction),
// 5 deliveries (pending, posted, failed, private, the reset's notice),
// users, participants, a thread, cursors, an offer, an indicator, the
// posted parts, a waiting Matrix event and an installed workspace.
func fillSQLite(t *testing.T, path string) {
	t.Helper()
	ctx := t.Context()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	room := func(r string) bridge.RoomKey { return bridge.RoomKey{Platform: bridge.PlatformSlack, Room: r} }
	key := func(r string) bridge.ConvKey { return bridge.ConvKey{Bot: "b", Scope: bridge.ScopeRoom, Room: room(r)} }
	enqueue := func(k bridge.ConvKey, ev string, engage bridge.RoomKey) bridge.OutboxItem {
		t.Helper()
		it, _, err := db.EnqueueInbound(ctx, k, bridge.Inbound{Key: bridge.EventKey(ev), Room: k.Room, Text: "text of " + ev,
			Sender: bridge.Sender{ID: "U1", Name: "Ada"}, Time: now}, engage)
		must(err)
		return it
	}
	a := enqueue(key("C1"), "a1", bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1", Thread: "1.1"})
	b := enqueue(key("C2"), "b1", bridge.RoomKey{})
	c := enqueue(key("C3"), "c1", bridge.RoomKey{})
	enqueue(key("C1"), "a2", bridge.RoomKey{})
	must(db.MarkInboundSent(ctx, a.ID, 1, "msg_a1", true, bridge.ReplyTarget{Room: room("C1"), MessageID: "1.1", UserID: "U1"}))
	must(db.FailInbound(ctx, b.ID, "refused \x00 here"))
	must(db.SetConversationChatID(ctx, a.Conversation, "conv_a"))
	must(db.SetConversationChatID(ctx, c.Conversation, "conv_c"))
	_, _, err = db.ResetConversation(ctx, key("C3"), bridge.Inbound{Key: "reset", Room: room("C3")},
		bridge.Delivery{MessageID: "notice", Bot: "b", Target: bridge.ReplyTarget{Room: room("C3")}, Payload: chat.Text{Text: "reset"}, CreatedAt: now})
	must(err)
	enqueue(key("C3"), "c2", bridge.RoomKey{})
	add := func(id string, conv int64) {
		t.Helper()
		_, _, err := db.AddDelivery(ctx, bridge.Delivery{MessageID: chat.MessageID(id), Conversation: conv, Bot: "b",
			Payload: chat.Choice{Text: "pick", Options: []chat.ChoiceOption{{Label: "A", Value: "a"}}}, CreatedAt: now})
		must(err)
	}
	add("m-pending", a.Conversation)
	add("m-posted", a.Conversation)
	add("m-failed", c.Conversation)
	must(db.MarkDelivered(ctx, "m-posted", bridge.Parts{"1.2", "", "1.3"}))
	must(db.FailDelivery(ctx, "m-failed", "gone"))
	must(db.PutUser(ctx, bridge.User{Bot: "b", Platform: bridge.PlatformSlack, PlatformID: "U1", ChatID: "user_1", Key: "eyJ.key", Name: "Ada"}))
	must(db.PutUser(ctx, bridge.User{Bot: "b", Platform: bridge.PlatformSlack, PlatformID: "U2", ChatID: "user_2"}))
	must(db.AddParticipant(ctx, a.Conversation, "user_1"))
	must(db.AddParticipant(ctx, a.Conversation, "user_2"))
	must(db.SetCursor(ctx, "matrix.next_batch", "s1"))
	must(db.Ping(ctx)) // the heartbeat cursor
	offer := bridge.Offer{Room: room("C1"), Bot: "b", Conversation: a.Conversation,
		Options: []chat.ChoiceOption{{Label: "A", Value: "a"}}, Expires: now.Add(time.Hour)}
	must(db.PutOffer(ctx, offer)) // pending while the choice is posted
	offer.MessageID = "1.2"
	must(db.PutOffer(ctx, offer))
	must(db.SetIndicator(ctx, bridge.ReplyTarget{Room: room("C1"), MessageID: "1.1", UserID: "U1"}, true))
	_, _, err = db.EnqueueInboundTo(ctx, a.Conversation, bridge.Inbound{Key: "react", Room: room("C1"), Time: now,
		Reaction: &bridge.Reaction{Emoji: "+1", MessageID: "1.3", ChatMessageID: "m-posted"}, Team: "T1"})
	must(err)
	cmd := enqueue(key("C2"), "cmd", bridge.RoomKey{})
	must(db.MarkInboundSent(ctx, cmd.ID, 1, "msg_cmd", true, bridge.ReplyTarget{Room: room("C2"), UserID: "U1", Ephemeral: true}))
	add("m-private", cmd.Conversation)
	must(db.AddMatrixPending(ctx, "@bot:hs", "!r:hs", "$e1", "@ann:hs", `{"type":"m.room.encrypted"}`, now))
	must(db.PutWorkspace(ctx, bridge.Workspace{Platform: bridge.PlatformSlack, ID: "E1", EnterpriseID: "E1", OrgWide: true,
		BotUserID: "U9", Scopes: []string{"chat:write", "commands"}, SealedToken: []byte{0, 1, 0xff}, InstalledAt: now}))
}

// compareTables checks that every table of the SQLite store at path has
// the same rows in the PostgreSQL database of dsn.
func compareTables(t *testing.T, path, dsn string) {
	t.Helper()
	ctx := t.Context()
	lite, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	liteDB, err := lite.SQL()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tables, err := copyOrder(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 12 {
		t.Errorf("%d tables, want botbridge's 12", len(tables))
	}
	str := func(v any) string {
		switch v := v.(type) {
		case nil:
			return "NULL"
		case []byte:
			return postgres.Storable(string(v))
		case string:
			return postgres.Storable(v)
		case bool: // SQLite's flags are 0 and 1
			if v {
				return "1"
			}
			return "0"
		}
		return fmt.Sprint(v)
	}
	for _, tb := range tables {
		cols := make([]string, len(tb.columns))
		for i, c := range tb.columns {
			cols[i] = quote(c)
		}
		query := "SELECT " + strings.Join(cols, ", ") + " FROM " + quote(tb.name)
		var want, got []string
		rows, err := liteDB.QueryContext(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, v := range vals {
				parts = append(parts, str(v))
			}
			want = append(want, strings.Join(parts, "|"))
		}
		rows.Close()
		pgRows, err := conn.Query(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		for pgRows.Next() {
			vals, err := pgRows.Values()
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, v := range vals {
				parts = append(parts, str(v))
			}
			got = append(got, strings.Join(parts, "|"))
		}
		pgRows.Close()
		slices.Sort(want)
		slices.Sort(got)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("table %s:\nSQLite     %q\nPostgreSQL %q", tb.name, want, got)
		}
	}
}
