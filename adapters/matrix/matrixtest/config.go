package matrixtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite" // registers "sqlite", used to put Dendrite's databases in WAL mode
)

// Files the harness keeps in a homeserver's directory.
const (
	configFile = "dendrite.yaml"
	keyFile    = "matrix_key.pem"
	logFile    = "dendrite.log"
)

// setting is one value written into dendrite.yaml at a dotted path.
type setting struct {
	path  string
	value any
}

// baseSettings turn generate-config's CI defaults into a closed, loopback-only
// homeserver whose state lives entirely in dir and survives a restart.
func baseSettings(dir string) []setting {
	return []setting{
		{"global.private_key", filepath.Join(dir, keyFile)},
		{"global.disable_federation", true},
		{"global.trusted_third_party_id_servers", []string{}},
		// JetStream carries events from the roomserver to /sync; in memory it
		// would lose what was in flight at a restart, unlike a real server.
		{"global.jetstream.in_memory", false},
		{"global.jetstream.storage_path", dir},
		// Open registration refuses to start without an extra flag; users are
		// made through the shared secret instead.
		{"client_api.registration_disabled", true},
		{"media_api.base_path", filepath.Join(dir, "media")},
		{"sync_api.search.enabled", false},
		// The CI defaults turn on experimental MSCs a real deployment would not have.
		{"mscs.mscs", []string{}},
		// The std hook writes to stdout/stderr, which Start sends to logFile
		// together with anything Dendrite prints before its logger is set up.
		{"logging", []map[string]string{{"type": "std", "level": "info"}}},
	}
}

// serverConfig is what the harness reads back from the written config.
type serverConfig struct {
	serverName string
	secret     string
	databases  []string // SQLite files
}

// prepare makes dir ready for a (re)start: it generates the signing key and
// the config the first time, applies baseSettings and then extra to the
// config, and puts every SQLite database the config names in WAL mode.
func prepare(ctx context.Context, bin, dir string, extra []setting) (serverConfig, error) {
	keyPath := filepath.Join(dir, keyFile)
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "generate-keys"), "-private-key", keyPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			return serverConfig{}, fmt.Errorf("generate-keys: %w\n%s", err, out)
		}
	}

	cfgPath := filepath.Join(dir, configFile)
	raw, err := os.ReadFile(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "generate-config"), "-ci", "-dir", dir, "-server", "localhost")
		cmd.Stderr = new(strings.Builder)
		if raw, err = cmd.Output(); err != nil {
			return serverConfig{}, fmt.Errorf("generate-config: %w\n%s", err, cmd.Stderr)
		}
	} else if err != nil {
		return serverConfig{}, err
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return serverConfig{}, fmt.Errorf("parse %s: %w", cfgPath, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return serverConfig{}, fmt.Errorf("parse %s: not a mapping", cfgPath)
	}
	root := doc.Content[0]
	for _, s := range append(baseSettings(dir), extra...) {
		if err := set(root, s.path, s.value); err != nil {
			return serverConfig{}, fmt.Errorf("config %s: %w", s.path, err)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return serverConfig{}, err
	}
	if err := os.WriteFile(cfgPath, out.Bytes(), 0o600); err != nil {
		return serverConfig{}, err
	}

	sc := serverConfig{
		serverName: scalar(root, "global.server_name"),
		secret:     scalar(root, "client_api.registration_shared_secret"),
		databases:  sqliteFiles(root, dir),
	}
	if sc.serverName == "" || sc.secret == "" {
		return serverConfig{}, fmt.Errorf("config %s: global.server_name and client_api.registration_shared_secret must be set", cfgPath)
	}
	for _, path := range sc.databases {
		if err := enableWAL(ctx, path); err != nil {
			return serverConfig{}, fmt.Errorf("wal %s: %w", path, err)
		}
	}
	return sc, nil
}

// set replaces the value at a dotted path, creating mappings on the way.
func set(n *yaml.Node, path string, value any) error {
	keys := strings.Split(path, ".")
	for i, key := range keys {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a mapping", strings.Join(keys[:i], "."))
		}
		child := lookup(n, key)
		if child == nil {
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, child)
		}
		n = child
	}
	var v yaml.Node
	if err := v.Encode(value); err != nil {
		return err
	}
	*n = v
	return nil
}

// lookup returns the value node of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// scalar returns the scalar at a dotted path, or "".
func scalar(n *yaml.Node, path string) string {
	for key := range strings.SplitSeq(path, ".") {
		if n.Kind != yaml.MappingNode {
			return ""
		}
		if n = lookup(n, key); n == nil {
			return ""
		}
	}
	if n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// sqliteFiles returns the file of every SQLite connection_string in the
// config, read the way Dendrite reads it (file:relative or file:///absolute;
// relative to the working directory, which Start sets to dir).
func sqliteFiles(n *yaml.Node, dir string) []string {
	var files []string
	seen := map[string]bool{}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			if v := lookup(n, "connection_string"); v != nil && v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Value, "file:") {
				if u, err := url.Parse(v.Value); err == nil {
					path := u.Opaque
					if path == "" {
						path = u.Path
					}
					if path != "" && !filepath.IsAbs(path) {
						path = filepath.Join(dir, path)
					}
					if path != "" && !seen[path] {
						seen[path] = true
						files = append(files, path)
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return files
}

// enableWAL creates the database at path if needed and switches it to WAL.
// Dendrite built without cgo leaves its databases in rollback-journal mode,
// where a client dropping a pending /sync can make it exit on "database is
// locked"; the journal mode is stored in the file, so setting it once sticks.
func enableWAL(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q after setting WAL", mode)
	}
	return db.Close()
}
