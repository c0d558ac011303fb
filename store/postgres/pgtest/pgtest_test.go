package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

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
