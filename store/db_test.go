package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/migrations"
	"github.com/botbridge/botbridge/store"
)

// The test binary runs itself as a child process to open a store as another
// user (TestOpenReadOnly) and to be killed while writing (TestCrashSafety).
const (
	childEnv     = "STORE_TEST_CHILD"
	childPathEnv = "STORE_TEST_PATH"
)

func TestMain(m *testing.M) {
	switch mode := os.Getenv(childEnv); mode {
	case "":
		os.Exit(m.Run())
	case "open":
		os.Exit(childOpen(os.Getenv(childPathEnv)))
	case "write":
		os.Exit(childWrite(os.Getenv(childPathEnv)))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, mode)
		os.Exit(2)
	}
}

// clock is DB.Now for tests: it stands still until moved.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock and returns the new time.
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

// newDB opens a new store in a temporary directory, on a test clock.
func newDB(t testing.TB) (*store.DB, *clock) {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "bridge.db"))
	clk := newClock()
	db.Now = clk.Now
	return db, clk
}

func roomKey(room, thread string) bridge.RoomKey {
	return bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room, Thread: thread}
}

func convKey(room string) bridge.ConvKey {
	return bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: roomKey(room, "")}
}

func newInbound(key string, room bridge.RoomKey, at time.Time) bridge.Inbound {
	return bridge.Inbound{
		Key:       bridge.EventKey(key),
		Room:      room,
		MessageID: "m-" + key,
		Sender:    bridge.Sender{ID: "U1", Name: "Ada"},
		Text:      "hello " + key,
		Time:      at,
	}
}

// enqueue stores a new inbound message and fails the test unless it was
// created.
func enqueue(t testing.TB, db *store.DB, key bridge.ConvKey, in bridge.Inbound) bridge.OutboxItem {
	t.Helper()
	it, created, err := db.EnqueueInbound(t.Context(), key, in, bridge.RoomKey{})
	if err != nil || !created {
		t.Fatalf("enqueue %s: created=%v, %v", in.Key, created, err)
	}
	return it
}

func pragma(t testing.TB, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("pragma %s: %v", name, err)
	}
	return v
}

func count(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := mustSQL(t, db).QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func migrationCount(t testing.TB) int {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	return len(files)
}

func TestOpen(t *testing.T) {
	t.Run("new file is created private and migrated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bridge.db")
		db := openDB(t, path)
		v, err := db.SchemaVersion(t.Context())
		if err != nil || v != migrationCount(t) {
			t.Fatalf("schema version = %d, %v; want %d", v, err, migrationCount(t))
		}
		for _, table := range []string{"conversations", "threads", "users", "participants", "inbound", "deliveries", "cursors"} {
			if n := count(t, db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table); n != 1 {
				t.Errorf("table %s missing", table)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("store file mode = %v, want 0600: it holds user keys", perm)
		}
		if db.Path() != path {
			t.Errorf("Path() = %q, want %q", db.Path(), path)
		}
	})

	t.Run("second open migrates nothing and keeps data", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bridge.db")
		db, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		it := enqueue(t, db, convKey("C1"), newInbound("ev1", roomKey("C1", ""), time.Now()))
		if err := db.SetCursor(t.Context(), "matrix.next_batch", "s42"); err != nil {
			t.Fatal(err)
		}
		schema := func(db *store.DB) string {
			var s string
			err := mustSQL(t, db).QueryRowContext(t.Context(), "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)").Scan(&s)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		before := schema(db)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		db = openDB(t, path)
		if v, err := db.SchemaVersion(t.Context()); err != nil || v != migrationCount(t) {
			t.Errorf("schema version = %d, %v; want %d", v, err, migrationCount(t))
		}
		if after := schema(db); after != before {
			t.Errorf("schema changed on second open:\nbefore %s\nafter  %s", before, after)
		}
		got, err := db.NextInbound(t.Context(), it.Conversation)
		if err != nil || got.ID != it.ID {
			t.Errorf("NextInbound = %d, %v; want %d", got.ID, err, it.ID)
		}
		if v, err := db.Cursor(t.Context(), "matrix.next_batch"); err != nil || v != "s42" {
			t.Errorf("cursor = %q, %v; want s42", v, err)
		}
	})

	t.Run("empty file becomes a store", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bridge.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		db := openDB(t, path)
		if v, err := db.SchemaVersion(t.Context()); err != nil || v != migrationCount(t) {
			t.Errorf("schema version = %d, %v", v, err)
		}
	})

	t.Run("path with URI characters is taken literally", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "a?mode=ro#b%20c.db")
		openDB(t, path)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("store not at the given path: %v", err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
				t.Errorf("stray file %q", e.Name())
			}
		}
	})

	t.Run("relative path", func(t *testing.T) {
		t.Chdir(t.TempDir())
		openDB(t, "bridge.db")
		if _, err := os.Stat("bridge.db"); err != nil {
			t.Error(err)
		}
	})

	t.Run("WAL, foreign keys, busy timeout and synchronous FULL are on", func(t *testing.T) {
		db, _ := newDB(t)
		for name, want := range map[string]string{
			"journal_mode":       "wal",
			"foreign_keys":       "1",
			"busy_timeout":       strconv.Itoa(int(store.BusyTimeout / time.Millisecond)),
			"synchronous":        "2", // FULL: a commit survives a power loss
			"journal_size_limit": "67108864",
		} {
			if got := pragma(t, mustSQL(t, db), name); got != want {
				t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
			}
		}
	})

	t.Run("SyncNormal trades the power loss for speed", func(t *testing.T) {
		db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "normal.db"), store.SyncNormal())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if got := pragma(t, mustSQL(t, db), "synchronous"); got != "1" {
			t.Errorf("PRAGMA synchronous = %s, want 1 (NORMAL)", got)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the path to open, in dir.
		setup func(t *testing.T, dir string) string
		// want are parts of the message: what went wrong and what to do.
		want []string
	}{{
		name: "no path",
		setup: func(*testing.T, string) string {
			return ""
		},
		want: []string{"no path", "store.path"},
	}, {
		name: "text file",
		setup: func(t *testing.T, dir string) string {
			return writeFile(t, filepath.Join(dir, "notes.txt"), []byte("these are my notes, not a database\n"))
		},
		want: []string{"not a SQLite database", "point store.path at a new file"},
	}, {
		name: "random bytes",
		setup: func(t *testing.T, dir string) string {
			b := make([]byte, 8192)
			for i := range b {
				b[i] = byte(i*7 + i/13)
			}
			return writeFile(t, filepath.Join(dir, "noise.db"), b)
		},
		want: []string{"not a SQLite database", "point store.path at a new file"},
	}, {
		name: "missing directory",
		setup: func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "bridge.db")
		},
		want: []string{"missing", "does not exist", "create it"},
	}, {
		name: "directory in place of a file",
		setup: func(t *testing.T, dir string) string {
			return dir
		},
		want: []string{"is a directory", "must name a file"},
	}, {
		name: "file in place of a directory",
		setup: func(t *testing.T, dir string) string {
			return filepath.Join(writeFile(t, filepath.Join(dir, "plain"), []byte("x")), "bridge.db")
		},
		want: []string{"plain", "not a directory"},
	}, {
		name: "newer schema",
		setup: func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "bridge.db")
			db, err := store.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mustSQL(t, db).ExecContext(t.Context(), "PRAGMA user_version = 999"); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return path
		},
		want: []string{"schema version 999", "newer botbridge", "restore a backup"},
	}} {
		t.Run(tc.name+" fails clearly", func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			db, err := store.Open(t.Context(), path)
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
		})
	}

	t.Run("newer schema is left alone", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bridge.db")
		db := openDB(t, path)
		if _, err := mustSQL(t, db).ExecContext(t.Context(), "PRAGMA user_version = 999"); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Open(t.Context(), path); err == nil {
			t.Fatal("second Open succeeded")
		}
		if v := pragma(t, mustSQL(t, db), "user_version"); v != "999" {
			t.Errorf("user_version = %s after the refused Open, want 999", v)
		}
	})
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openReport is what an Open by a user without write access found.
type openReport struct {
	// FileWritable and DirWritable say whether that user may write the store
	// file and its directory: the test checks that its set-up really took
	// write access away.
	FileWritable bool
	DirWritable  bool
	Err          string
	ErrStore     bool
}

// probeOpen opens the store at path, as the user the process runs as.
func probeOpen(ctx context.Context, path string) openReport {
	const writeOK = 2 // W_OK of access(2), which checks the real user
	r := openReport{
		FileWritable: syscall.Access(path, writeOK) == nil,
		DirWritable:  syscall.Access(filepath.Dir(path), writeOK) == nil,
	}
	db, err := store.Open(ctx, path)
	if err != nil {
		r.Err, r.ErrStore = err.Error(), errors.Is(err, bridge.ErrStore)
	} else {
		db.Close()
	}
	return r
}

// childOpen writes the openReport of path to stdout.
func childOpen(path string) int {
	if err := json.NewEncoder(os.Stdout).Encode(probeOpen(context.Background(), path)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// nobody is the user an unprivileged Open runs as when the tests run as root.
const nobody = 65534

// openUnprivileged opens the store at path as a user who is not root. Root
// writes through any file mode, so as root it runs exe, a copy of the test
// binary (see unprivilegedExe), as nobody: botbridge running on a store that
// root made. Otherwise exe is empty and the store is opened in-process.
func openUnprivileged(t *testing.T, exe, path string) openReport {
	t.Helper()
	if exe == "" {
		return probeOpen(t.Context(), path)
	}
	cmd := exec.CommandContext(t.Context(), exe)
	cmd.Env = []string{childEnv + "=open", childPathEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("open as uid %d: %v\n%s", nobody, err, stderr.String())
	}
	var r openReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	return r
}

// unprivilegedExe returns "" when the tests do not run as root, and else a
// copy of the test binary that nobody may run (go test builds it in a
// directory only root may enter).
func unprivilegedExe(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(sharedDir(t, 0o755), "store.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// sharedDir returns a temporary directory with the given mode that other
// users may reach.
func sharedDir(t *testing.T, mode fs.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { os.Chmod(dir, 0o700) }) // so that it can be removed
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{{filepath.Dir(dir), 0o755}, {dir, mode}} {
		if err := os.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenReadOnly(t *testing.T) {
	exe := unprivilegedExe(t)
	// makeStore creates a store in dir as the test's user, readable by all.
	makeStore := func(t *testing.T, dir string) string {
		path := filepath.Join(dir, "bridge.db")
		db := openDB(t, path)
		enqueue(t, db, convKey("C1"), newInbound("ev1", roomKey("C1", ""), time.Now()))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name string
		// setup returns the path to open; dir is writable by all.
		setup func(t *testing.T, dir string) string
		// fileRO and dirRO say which of file and directory the set-up made
		// read-only for the opener.
		fileRO, dirRO bool
		want          []string
	}{{
		name: "read-only file",
		setup: func(t *testing.T, dir string) string {
			path := makeStore(t, dir)
			chmod(t, path, 0o444)
			return path
		},
		fileRO: true,
		want:   []string{"read-only", "needs write access"},
	}, {
		name: "read-only directory",
		setup: func(t *testing.T, dir string) string {
			path := makeStore(t, dir)
			chmod(t, path, 0o666)
			chmod(t, dir, 0o555)
			return path
		},
		dirRO: true,
		want:  []string{"read-only", "needs write access", "-wal"},
	}, {
		name: "new file in read-only directory",
		setup: func(t *testing.T, dir string) string {
			chmod(t, dir, 0o555)
			return filepath.Join(dir, "bridge.db")
		},
		fileRO: true,
		dirRO:  true,
		want:   []string{"cannot create", "needs write access to " + "DIR"},
	}} {
		t.Run(tc.name+" fails at open", func(t *testing.T) {
			dir := sharedDir(t, 0o777)
			path := tc.setup(t, dir)
			r := openUnprivileged(t, exe, path)
			if r.FileWritable == tc.fileRO || r.DirWritable == tc.dirRO {
				t.Fatalf("set-up failed: the opener may write file: %v, directory: %v", r.FileWritable, r.DirWritable)
			}
			if r.Err == "" {
				t.Fatal("Open succeeded")
			}
			if !r.ErrStore {
				t.Errorf("error does not wrap ErrStore: %s", r.Err)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(r.Err, w) {
					t.Errorf("error %q does not contain %q", r.Err, w)
				}
			}
		})
	}
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// mustSQL returns the store's pool for other components' tables.
func mustSQL(t testing.TB, db *store.DB) *sql.DB {
	t.Helper()
	pool, err := db.SQL()
	if err != nil {
		t.Fatal(err)
	}
	return pool
}
