package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var pg Server

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

func TestEachDSNIsANewDatabase(t *testing.T) {
	ctx := t.Context()
	var names []string
	for range 2 {
		conn, err := pgx.Connect(ctx, pg.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		var name string
		var tables int
		err = conn.QueryRow(ctx, `SELECT current_database(),
			(SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public')`).Scan(&name, &tables)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("database %s has %d tables, want none", name, tables)
		}
		names = append(names, name)
	}
	if names[0] == names[1] {
		t.Errorf("both DSNs name database %s", names[0])
	}
}

func TestThrowawayServer(t *testing.T) {
	if os.Getenv(EnvDSN) != "" {
		t.Skipf("%s names an existing server", EnvDSN)
	}
	s := new(Server)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, s.Admin(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var fsync, listen, user string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('listen_addresses'), current_user").Scan(&fsync, &listen, &user); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || listen != "127.0.0.1" {
		t.Errorf("fsync = %s, listen_addresses = %s; want off, 127.0.0.1", fsync, listen)
	}
	// As root, the server's processes belong to User.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	uid := fmt.Sprint(os.Geteuid())
	if os.Geteuid() == 0 {
		u, err := systemUser(ctx)
		if err != nil {
			t.Fatal(err)
		}
		uid = u.Uid
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] != uid {
			t.Errorf("postgres runs as uid %s, want %s", f[1], uid)
		}
	}
	conn.Close(ctx)
	dir := s.dir
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", dir, err)
	}
}

func TestNoServerSaysHowToInstallOne(t *testing.T) {
	_, err := findBinDir(t.TempDir(), "/nonexistent/postgresql/*/bin")
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql-15") || !strings.Contains(err.Error(), EnvDSN) {
		t.Errorf("error %v; want one saying how to install PostgreSQL or name a server", err)
	}
}

// fakeTB records how ready ended a test; its other methods are not called.
type fakeTB struct {
	testing.TB
	ended string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.ended = "skip: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.ended = "fail: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// readyOutcome returns how s.ready ends a test: "" when the server is
// ready, else "skip: " or "fail: " and the message.
func readyOutcome(s *Server) string {
	f := new(fakeTB)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ready(f)
	}()
	<-done
	return f.ended
}

func TestWithoutPostgreSQL(t *testing.T) {
	t.Setenv(EnvDSN, "")
	missing := func() (string, error) { return findBinDir(t.TempDir(), "/nonexistent/postgresql/*/bin") }

	t.Run("the tests are skipped, saying what they need", func(t *testing.T) {
		t.Setenv(EnvRequire, "")
		got := readyOutcome(&Server{findBin: missing})
		for _, want := range []string{"skip: ", "apt-get install postgresql-15", EnvDSN + "=", EnvRequire + "=1"} {
			if !strings.Contains(got, want) {
				t.Errorf("ready ended the test with %q; want a skip saying %q", got, want)
			}
		}
	})
	t.Run("with BOTBRIDGE_REQUIRE_POSTGRES=1 they fail", func(t *testing.T) {
		t.Setenv(EnvRequire, "1")
		if got := readyOutcome(&Server{findBin: missing}); !strings.HasPrefix(got, "fail: ") || !strings.Contains(got, "apt-get install postgresql-15") {
			t.Errorf("ready ended the test with %q; want a failure saying how to install PostgreSQL", got)
		}
	})
	t.Run("a server that does not start fails them", func(t *testing.T) {
		t.Setenv(EnvRequire, "")
		broken := func() (string, error) { return "", errors.New("initdb is broken") }
		if got := readyOutcome(&Server{findBin: broken}); !strings.HasPrefix(got, "fail: ") {
			t.Errorf("ready ended the test with %q; want a failure", got)
		}
	})
	t.Run("a server named by BOTBRIDGE_TEST_POSTGRES that does not answer fails them", func(t *testing.T) {
		t.Setenv(EnvRequire, "")
		t.Setenv(EnvDSN, "postgres://nobody@127.0.0.1:1/postgres?connect_timeout=2")
		s := &Server{findBin: missing}
		if got := readyOutcome(s); !strings.HasPrefix(got, "fail: ") {
			t.Errorf("ready ended the test with %q; want a failure", got)
		}
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
}

func TestRestartKeepsTheDataAndThePort(t *testing.T) {
	if os.Getenv(EnvDSN) != "" {
		t.Skip("a server named by " + EnvDSN + " is not restarted")
	}
	s := Start(t)
	dsn := s.DSN(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	s.Restart(t, 100*time.Millisecond)
	if err := conn.Ping(ctx); err == nil {
		t.Error("a session of before the restart still works")
	}
	conn.Close(ctx)
	again, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect after the restart: %v", err)
	}
	defer again.Close(ctx)
	var v int
	if err := again.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Errorf("after the restart: %d, %v; want 42", v, err)
	}
}
