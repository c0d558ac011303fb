package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/store"
	"github.com/botbridge/botbridge/store/postgres"
)

// cmdMigrateStore copies a stopped SQLite store into an empty PostgreSQL
// database.
func cmdMigrateStore(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("migrate-store", stderr)
	from := fs.String("from", "", "the store to copy, `sqlite:FILE`; stop the botbridge that uses it first")
	to := fs.String("to", "", "the empty PostgreSQL database to copy it into, `postgres:DSN` (the password may come from PGPASSWORD)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, ok := strings.CutPrefix(*from, "sqlite:")
	if !ok || path == "" {
		return fmt.Errorf("%w: -from: want sqlite:FILE, the SQLite store to copy", errUsage)
	}
	dsn, ok := strings.CutPrefix(*to, "postgres:")
	if !ok || dsn == "" {
		return fmt.Errorf("%w: -to: want postgres:DSN, the PostgreSQL database to copy into", errUsage)
	}
	return MigrateStore(ctx, path, dsn, stdout)
}

// MigrateStore copies every table of the SQLite store at path into the
// PostgreSQL database of dsn, which must hold no botbridge rows, in one
// transaction, and then checks that each table has as many rows as in the
// SQLite store. It reads the SQLite store in one transaction that keeps
// other writers out, but a botbridge running on it would go on without
// the copy: stop it first. It reports what it copied to out.
func MigrateStore(ctx context.Context, path, dsn string, out io.Writer) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("-from: %w", err) // store.Open would make a new, empty store
	}
	lite, err := store.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	defer lite.Close()
	pg, err := postgres.Open(ctx, dsn) // makes botbridge's tables
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	defer pg.Close()
	liteVersion, err := lite.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	pgVersion, err := pg.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if liteVersion != pgVersion {
		return fmt.Errorf("the schemas differ: the SQLite store has version %d, PostgreSQL %d: this botbridge lacks the PostgreSQL twin of a migration", liteVersion, pgVersion)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("-to: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := copyOrder(ctx, conn)
	if err != nil {
		return err
	}
	for _, t := range tables {
		var rows bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pgx.Identifier{t.name}.Sanitize()+")").Scan(&rows); err != nil {
			return fmt.Errorf("-to: %w", err)
		}
		if rows {
			return fmt.Errorf("-to: the database is not empty: table %s has rows; migrate-store copies into a database without botbridge's data only", t.name)
		}
	}

	liteDB, err := lite.SQL()
	if err != nil {
		return err
	}
	// One SQLite transaction reads every table as of one moment. It begins
	// IMMEDIATE (the store's pools do), so no writer changes the store
	// meanwhile.
	liteTx, err := liteDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	defer liteTx.Rollback()
	counts := map[string]int64{}
	cleaned := 0
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range tables {
			rows, n, err := readTable(ctx, liteTx, t)
			if err != nil {
				return fmt.Errorf("-from: table %s: %w", t.name, err)
			}
			cleaned += n
			copied, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, pgx.CopyFromRows(rows))
			if err != nil {
				return fmt.Errorf("-to: table %s: %w", t.name, err)
			}
			counts[t.name] = copied
			// Identity columns go on after the ids copied.
			for _, c := range t.identity {
				if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(%s) FROM %s), 0) + 1, false)",
					pgx.Identifier{c}.Sanitize(), pgx.Identifier{t.name}.Sanitize()), t.name, c); err != nil {
					return fmt.Errorf("-to: table %s: %w", t.name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	var report []string
	for _, t := range tables {
		var lc, pc int64
		if err := liteTx.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(t.name)).Scan(&lc); err != nil {
			return fmt.Errorf("-from: count %s: %w", t.name, err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t.name}.Sanitize()).Scan(&pc); err != nil {
			return fmt.Errorf("-to: count %s: %w", t.name, err)
		}
		if lc != pc || pc != counts[t.name] {
			return fmt.Errorf("table %s: %d rows in the SQLite store, %d copied, %d in PostgreSQL: the copy is incomplete; empty the database and run migrate-store again", t.name, lc, counts[t.name], pc)
		}
		report = append(report, fmt.Sprintf("%s %d", t.name, pc))
	}
	fmt.Fprintf(out, "copied %s into %s: %s\n", path, pg, strings.Join(report, ", "))
	if cleaned > 0 {
		fmt.Fprintf(out, "%d texts held NUL bytes or invalid UTF-8, which PostgreSQL cannot store: they were copied with U+FFFD in their place\n", cleaned)
	}
	return nil
}

// table is a table of botbridge's schema as migrate-store copies it.
type table struct {
	name     string
	columns  []string
	types    []string
	identity []string
}

// copyOrder returns botbridge's tables in PostgreSQL (all but
// schema_version, and leases, which belong to the processes running on a
// store: a stopped store's mean nothing, and PostgreSQL counts its tokens
// from a sequence of its own), each after the tables its foreign keys refer
// to.
func copyOrder(ctx context.Context, conn *pgx.Conn) ([]table, error) {
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name NOT IN ('schema_version', 'leases')
		ORDER BY table_name, ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("-to: %w", err)
	}
	byName := map[string]*table{}
	var names []string
	for rows.Next() {
		var name, column, typ, identity string
		if err := rows.Scan(&name, &column, &typ, &identity); err != nil {
			return nil, fmt.Errorf("-to: %w", err)
		}
		t := byName[name]
		if t == nil {
			t = &table{name: name}
			byName[name] = t
			names = append(names, name)
		}
		t.columns = append(t.columns, column)
		t.types = append(t.types, typ)
		if identity == "YES" {
			t.identity = append(t.identity, column)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("-to: %w", err)
	}
	refs := map[string][]string{}
	rows, err = conn.Query(ctx, `SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
		WHERE contype = 'f' AND connamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, fmt.Errorf("-to: %w", err)
	}
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			return nil, fmt.Errorf("-to: %w", err)
		}
		if from != to {
			refs[from] = append(refs[from], to)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("-to: %w", err)
	}
	var order []table
	done := map[string]bool{}
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		if done[name] {
			return nil
		}
		if depth > len(names) {
			return fmt.Errorf("-to: the foreign keys of table %s make a cycle", name)
		}
		for _, r := range refs[name] {
			if err := visit(r, depth+1); err != nil {
				return err
			}
		}
		if t := byName[name]; t != nil && !done[name] {
			order = append(order, *t)
		}
		done[name] = true
		return nil
	}
	slices.Sort(names)
	for _, n := range names {
		if err := visit(n, 0); err != nil {
			return nil, err
		}
	}
	if len(order) == 0 {
		return nil, errors.New("-to: botbridge's tables are missing")
	}
	return order, nil
}

// readTable reads every row of t from the SQLite store, as PostgreSQL's
// columns take them, and counts the texts it had to clean.
func readTable(ctx context.Context, tx *sql.Tx, t table) ([][]any, int, error) {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = quote(c)
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+quote(t.name))
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out [][]any
	cleaned := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, 0, err
		}
		for i, v := range vals {
			if t.types[i] == "boolean" {
				// SQLite keeps flags as integers 0 and 1.
				if n, ok := v.(int64); ok {
					vals[i] = n != 0
				}
				continue
			}
			if t.types[i] != "text" {
				continue
			}
			var s string
			switch v := v.(type) {
			case []byte: // JSON bodies are stored as blobs
				s = string(v)
			case string:
				s = v
			default:
				continue
			}
			if c := postgres.Storable(s); c != s {
				s = c
				cleaned++
			}
			vals[i] = s
		}
		out = append(out, vals)
	}
	return out, cleaned, rows.Err()
}

// quote quotes an SQLite identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
