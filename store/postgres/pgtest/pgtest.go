// Package pgtest gives tests a real PostgreSQL: a throwaway server it starts
// itself (initdb and postgres of the machine's PostgreSQL, Debian's
// postgresql-15, in a temporary directory, on a free loopback port, with
// fsync off), or an existing server named by BOTBRIDGE_TEST_POSTGRES. Each
// test gets a new database of its own.
//
// A package's tests share one server, stopped by TestMain:
//
//	var pg pgtest.Server
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := pg.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
//
// and a test takes a database with pg.DSN(t). Without PostgreSQL's binaries
// and without the variable, the tests are skipped, saying how to install
// them, so that the repository's tests pass on a machine with only Go;
// with BOTBRIDGE_REQUIRE_POSTGRES=1 (as CI sets it) they fail instead.
//
// Run as root (as CI is), the server runs as the system user
// botbridge-pgtest, made with useradd when missing, because PostgreSQL
// refuses to run as root.
package pgtest

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvDSN names the environment variable that points the tests at an
// existing server instead of a throwaway one: the connection string of a
// user who may create databases, e.g.
// postgres://postgres:secret@127.0.0.1:5432/postgres.
const EnvDSN = "BOTBRIDGE_TEST_POSTGRES"

// EnvRequire names the environment variable that, set to 1, makes the
// tests fail instead of skipping when there is no PostgreSQL: CI sets it,
// so that these tests are never skipped there.
const EnvRequire = "BOTBRIDGE_REQUIRE_POSTGRES"

// User is the system user the server runs as when the tests run as root.
const User = "botbridge-pgtest"

// installHint says how to get what the tests need.
const installHint = "install PostgreSQL's server (apt-get install postgresql-15), or name a server with " +
	EnvDSN + "=postgres://USER:PASSWORD@HOST:PORT/postgres"

// errNoServer is the failure to find PostgreSQL's binaries, which skips
// the tests unless EnvRequire says otherwise.
var errNoServer = errors.New("no PostgreSQL server for the tests of botbridge's PostgreSQL store")

// startTimeout bounds initdb and the server's start.
const startTimeout = 60 * time.Second

// Server is a PostgreSQL server for tests, started (or found through
// EnvDSN or Existing) at the first call of DSN or Open. The zero Server is
// ready to use; Stop stops it.
type Server struct {
	// Existing, when set, names the server to use instead of starting one,
	// as EnvDSN does, which it overrides.
	Existing string

	once sync.Once
	err  error

	// admin is the connection string of the maintenance database, and pool
	// a pool on it for creating and dropping databases.
	admin string
	pool  *pgxpool.Pool
	// create is the statement that makes a database, after its name.
	create string
	// dir holds the data directory, socket and log of a server started
	// here; cmd is its postmaster and exited closes when it exits.
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	// bin, data, port and cred start it again (Restart).
	bin, data string
	port      int
	cred      *syscall.Credential
	// findBin finds PostgreSQL's binaries: binDir, or a test's own.
	findBin func() (string, error)

	seq atomic.Int64
}

// Start returns a server for one test, stopped when tb ends.
func Start(tb testing.TB) *Server {
	s := new(Server)
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// DSN returns the connection string of a new, empty database, dropped when
// tb ends (after the cleanups tb registers later, such as closing a store
// on it). It starts the server on first use; when there is none it skips
// tb, or fails it with EnvRequire=1 (see ready).
func (s *Server) DSN(tb testing.TB) string {
	tb.Helper()
	s.ready(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, drop, err := s.NewDatabase(ctx)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := drop(ctx); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// Open starts the server (or connects to the one EnvDSN names) outside a
// test, for tools such as botbridge-bench; Stop stops it. Without
// PostgreSQL its error says how to install it. Later calls return the
// first's result.
func (s *Server) Open() error {
	s.once.Do(func() { s.err = s.start() })
	return s.err
}

// NewDatabase creates a new, empty database on the server, which must be
// open, and returns its connection string and the function that drops it.
func (s *Server) NewDatabase(ctx context.Context) (dsn string, drop func(context.Context) error, err error) {
	if s.pool == nil {
		return "", nil, errors.New("pgtest: the server is not open")
	}
	name := fmt.Sprintf("botbridge_test_%d_%d", os.Getpid(), s.seq.Add(1))
	if _, err := s.pool.Exec(ctx, "CREATE DATABASE "+name+s.create); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		if _, err := s.pool.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	if dsn, err = withDatabase(s.admin, name); err != nil {
		return "", nil, errors.Join(err, drop(ctx))
	}
	return dsn, drop, nil
}

// Admin returns the connection string of the server's maintenance
// database (a superuser's on a throwaway server), starting the server on
// first use.
func (s *Server) Admin(tb testing.TB) string {
	tb.Helper()
	s.ready(tb)
	return s.admin
}

// ready starts the server on first use. Without PostgreSQL's binaries (and
// without EnvDSN) it skips tb saying what the tests need, unless EnvRequire
// is 1; any other failure to start fails tb.
func (s *Server) ready(tb testing.TB) {
	tb.Helper()
	switch err := s.Open(); {
	case err == nil:
	case errors.Is(err, errNoServer) && os.Getenv(EnvRequire) != "1":
		tb.Skipf("pgtest: SKIPPED, PostgreSQL is missing: %v. Set %s=1 to fail instead of skipping (CI does).", err, EnvRequire)
	default:
		tb.Fatalf("pgtest: %v", err)
	}
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// In the keyword/value form, the last of a keyword wins.
	return dsn + " dbname=" + name, nil
}

// start finds or starts the server and connects to it.
func (s *Server) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if dsn := cmp.Or(s.Existing, os.Getenv(EnvDSN)); dsn != "" {
		s.admin = dsn
	} else if err := s.startLocal(ctx); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, s.admin)
	if err != nil {
		return fmt.Errorf("connect to the test server: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("connect to the test server: %w", err)
	}
	s.pool = pool
	// Copying the template's files is three times as fast as writing them
	// to the WAL, PostgreSQL 15's default.
	var version int
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("test server: %w", err)
	}
	if version >= 150000 {
		s.create = " STRATEGY FILE_COPY"
	}
	return nil
}

// startLocal runs initdb and postgres in a new temporary directory.
func (s *Server) startLocal(ctx context.Context) error {
	find := s.findBin
	if find == nil {
		find = binDir
	}
	bin, err := find()
	if err != nil {
		return err
	}
	if s.dir, err = os.MkdirTemp("", "botbridge-pgtest-"); err != nil {
		return err
	}
	cred, err := credential(ctx, s.dir)
	if err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Env = childEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb in %s: %v\n%s", s.dir, err, out)
	}
	// A port picked free may be taken before postgres binds it.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		err = s.run(ctx, bin, data, port, cred)
		if err == nil {
			s.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			s.bin, s.data, s.port, s.cred = bin, data, port, cred
			return nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			return err
		}
	}
}

// run starts postgres on port and waits until it accepts connections.
func (s *Server) run(ctx context.Context, bin, data string, port int, cred *syscall.Credential) error {
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-k", s.dir,
		// A throwaway server: durability buys nothing and costs the tests
		// their speed.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// Each test opens pools of its own, several at once; the test
		// binaries of several packages run a server each at once.
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server goes when the tests die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	conf, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port))
	if err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, conf)
		if err == nil {
			conn.Close(ctx)
			s.cmd, s.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited at start: %v\n%s", cmd.ProcessState, tail(logPath, 20))
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres did not accept connections within %v: %v\n%s", startTimeout, err, tail(logPath, 20))
		case <-tick.C:
		}
	}
}

// Restart stops the server (PostgreSQL's fast shutdown: every session
// ends), keeps it down for down, and starts it again on the same port and
// data, as an operator's restart or a failover does. It fails tb when it
// cannot, and skips tb for a server named by EnvDSN, which it did not
// start.
func (s *Server) Restart(tb testing.TB, down time.Duration) {
	tb.Helper()
	s.ready(tb)
	if s.cmd == nil {
		tb.Skipf("pgtest: a server named by %s cannot be restarted", EnvDSN)
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		tb.Fatal("pgtest: postgres did not stop within 30s of SIGINT")
	}
	select {
	case <-time.After(down):
	case <-tb.Context().Done():
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.run(ctx, s.bin, s.data, s.port, s.cred); err != nil {
		tb.Fatalf("pgtest: start postgres again: %v", err)
	}
	s.pool.Reset() // its sessions ended with the server
}

// Stop stops a server this Server started and removes its files; a server
// named by EnvDSN is left running (the databases of the tests are dropped
// by their cleanups).
func (s *Server) Stop() error {
	if s.pool != nil {
		s.pool.Close()
	}
	var err error
	if s.cmd != nil {
		// SIGINT is PostgreSQL's fast shutdown: it ends the sessions and
		// stops without waiting for clients.
		s.cmd.Process.Signal(syscall.SIGINT)
		timer := time.NewTimer(30 * time.Second)
		select {
		case <-s.exited:
			timer.Stop()
		case <-timer.C:
			s.cmd.Process.Kill()
			<-s.exited
			err = errors.New("pgtest: postgres did not stop within 30s of SIGINT; killed it")
		}
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// binDir returns the directory of PostgreSQL's initdb and postgres: from
// PATH, pg_config --bindir or /usr/lib/postgresql/*/bin, newest first.
func binDir() (string, error) {
	return findBinDir(os.Getenv("PATH"), "/usr/lib/postgresql/*/bin")
}

// findBinDir looks for initdb in the directories of path, then in
// pg_config's bindir, then in those matching pattern.
func findBinDir(path, pattern string) (string, error) {
	var dirs []string
	if p, err := lookPath("initdb", path); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	if p, err := lookPath("pg_config", path); err == nil {
		if out, err := exec.Command(p, "--bindir").Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
	}
	found, _ := filepath.Glob(pattern)
	slices.SortFunc(found, func(a, b string) int { return version(b) - version(a) })
	dirs = append(dirs, found...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (initdb and postgres on PATH, in pg_config --bindir or in /usr/lib/postgresql/*/bin): %s", errNoServer, installHint)
}

// lookPath looks for an executable in the directories of path.
func lookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if p := filepath.Join(dir, name); dir != "" && isExec(p) {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// version returns the major version in a path /usr/lib/postgresql/N/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// credential returns the user the server runs as: nil (this process's) for
// a user who is not root, else User, made if missing, who is given dir.
func credential(ctx context.Context, dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := systemUser(ctx)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	// The user must reach dir: its parents must let others through.
	for p := filepath.Dir(dir); p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return nil, fmt.Errorf("%s is not reachable by user %s (mode %v): set TMPDIR to a directory others may enter, such as /tmp", p, User, fi.Mode().Perm())
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// systemUser returns User, made with useradd when missing. Test binaries
// of several packages may try at once: useradd fails for all but one of
// them (the user exists, or /etc/passwd is locked), and they look again.
func systemUser(ctx context.Context) (*user.User, error) {
	var lastErr error
	for range 20 {
		if u, err := user.Lookup(User); err == nil {
			return u, nil
		}
		out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "botbridge tests' PostgreSQL", User).CombinedOutput()
		if err == nil {
			continue
		}
		lastErr = fmt.Errorf("useradd %s: %v: %s", User, err, bytesTrim(out))
		if errors.Is(err, exec.ErrNotFound) {
			break
		}
		timer := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
	return nil, fmt.Errorf("the tests run as root, and PostgreSQL refuses to: they need the system user %s and could not make it: %w; make it with: useradd --system --user-group %s", User, lastErr, User)
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }

// childEnv is the environment of initdb and postgres: no PG* variables of
// the tests, the C locale.
func childEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
