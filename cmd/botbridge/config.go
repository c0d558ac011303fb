package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/botbridge/botbridge/bridge"
)

// Config is the schema of botbridge's YAML configuration file. Every option
// is documented, with its default, in config.example.yaml.
type Config struct {
	Log    LogConfig     `yaml:"log"`
	Store  StoreConfig   `yaml:"store"`
	HTTP   HTTPConfig    `yaml:"http"`
	Bridge BridgeConfig  `yaml:"bridge"`
	Bots   []BotConfig   `yaml:"bots"`
	Routes []RouteConfig `yaml:"routes"`
	Slack  SlackConfig   `yaml:"slack"`
	Matrix MatrixConfig  `yaml:"matrix"`
}

// LogConfig configures logging to standard error.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error; default info
	Format string `yaml:"format"` // text or json; default text
}

// StoreConfig chooses and locates the store.
type StoreConfig struct {
	// Driver is sqlite (one file for one process; the default) or postgres
	// (a PostgreSQL database).
	Driver string `yaml:"driver"`
	Path   string `yaml:"path"` // sqlite: the file; default botbridge.db
	// DSN is PostgreSQL's connection string (driver postgres), its
	// password through ${VAR}.
	DSN string `yaml:"dsn"`
	// MaxSizeMB caps the store's size in megabytes: past it, writes fail as
	// on a full disk and nothing new is acknowledged. Default 0, no cap.
	MaxSizeMB int `yaml:"max_size_mb"`
}

// HTTPConfig configures the HTTP listener for health, metrics and file
// links.
type HTTPConfig struct {
	// Addr is host:port; empty turns the listener off.
	Addr string `yaml:"addr"`
	// PublicURL is how the bot reaches this listener, for links to files
	// people send; empty gives the bot the file's name and permalink.
	PublicURL string `yaml:"public_url"`
}

// BridgeConfig tunes the engine.
type BridgeConfig struct {
	Workers        int           `yaml:"workers"`         // default 64
	ListenerIdle   time.Duration `yaml:"listener_idle"`   // default 10m
	StreamThrottle time.Duration `yaml:"stream_throttle"` // default 1s
	TypingTimeout  time.Duration `yaml:"typing_timeout"`  // default 2m
	Retention      time.Duration `yaml:"retention"`       // default 168h
	DrainTimeout   time.Duration `yaml:"drain_timeout"`   // default 5s
}

// BotConfig is one Botpress bot.
type BotConfig struct {
	Name string `yaml:"name"`
	// URL is the Chat API base URL, https://chat.botpress.cloud/<webhook id>.
	URL string `yaml:"url"`
	// WebhookID with APIURL is the other way to give URL.
	WebhookID string `yaml:"webhook_id"`
	APIURL    string `yaml:"api_url"` // default https://chat.botpress.cloud
	// EncryptionKey is the Chat integration's Encryption Key; empty uses
	// createUser and keeps user keys in the store.
	EncryptionKey string `yaml:"encryption_key"`
}

// RouteConfig maps rooms to a bot; see bridge.Route.
type RouteConfig struct {
	Bot       string   `yaml:"bot"`
	Platform  string   `yaml:"platform"`
	Rooms     []string `yaml:"rooms"`
	DM        string   `yaml:"dm"`
	Answer    string   `yaml:"answer"`
	Scope     string   `yaml:"scope"`
	Users     []string `yaml:"users"`
	AllowBots bool     `yaml:"allow_bots"`
	ResetWord string   `yaml:"reset_word"`
}

// DefaultAPIURL is Botpress Cloud's Chat API.
const DefaultAPIURL = "https://chat.botpress.cloud"

// defaults returns the configuration before the file is applied.
func defaults() Config {
	return Config{
		Log:   LogConfig{Level: "info", Format: "text"},
		Store: StoreConfig{Driver: DriverSQLite, Path: "botbridge.db"},
	}
}

// LoadConfig reads, decodes strictly (an unknown key is an error), expands
// ${VAR} references and validates the file at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f, os.LookupEnv)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes a configuration, expanding ${VAR} in every string
// value with lookup, and validates it.
func ParseConfig(r io.Reader, lookup func(string) (string, bool)) (Config, error) {
	cfg := defaults()
	raw, err := io.ReadAll(r)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("%s (check the spelling and indentation against config.example.yaml)", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := expandEnv(reflect.ValueOf(&cfg).Elem(), "", lookup); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every string of v, naming the field of a
// variable that is not set.
func expandEnv(v reflect.Value, path string, lookup func(string) (string, bool)) error {
	switch v.Kind() {
	case reflect.String:
		var missing []string
		s := envRef.ReplaceAllStringFunc(v.String(), func(m string) string {
			name := m[2 : len(m)-1]
			val, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			return val
		})
		if len(missing) > 0 {
			return fmt.Errorf("%s: environment variable %s is not set", path, strings.Join(missing, ", "))
		}
		v.SetString(s)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if err := expandEnv(v.Field(i), join(path, name), lookup); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := expandEnv(v.Index(i), fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return expandEnv(v.Elem(), path, lookup)
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Validate checks the configuration; each error names the field and says
// how to fix it.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: %q is not text or json", c.Log.Format)
	}
	switch c.Store.Driver {
	case "", DriverSQLite:
		if c.Store.Path == "" {
			add("store.path: must not be empty")
		}
	case DriverPostgres:
		if c.Store.DSN == "" {
			add("store.dsn: must be set with store.driver postgres, e.g. postgres://botbridge:${BOTBRIDGE_DB_PASSWORD}@db:5432/botbridge")
		}
		if c.Store.MaxSizeMB != 0 {
			add("store.max_size_mb: applies to store.driver sqlite only; leave it 0 and watch PostgreSQL's disk")
		}
		if c.Matrix.HomeserverURL != "" {
			add("matrix: %v", errMatrixOnPostgres)
		}
	default:
		add("store.driver: %q is not %s or %s", c.Store.Driver, DriverSQLite, DriverPostgres)
	}
	if c.Store.MaxSizeMB < 0 {
		add("store.max_size_mb: must not be negative (0 is no cap)")
	}
	if c.HTTP.PublicURL != "" {
		if c.HTTP.Addr == "" {
			add("http.public_url: needs http.addr, the listener that serves the files")
		}
		if err := checkURL(c.HTTP.PublicURL); err != nil {
			add("http.public_url: %v", err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"bridge.listener_idle", c.Bridge.ListenerIdle}, {"bridge.stream_throttle", c.Bridge.StreamThrottle},
		{"bridge.typing_timeout", c.Bridge.TypingTimeout}, {"bridge.retention", c.Bridge.Retention},
		{"bridge.drain_timeout", c.Bridge.DrainTimeout},
	} {
		if d.v < 0 {
			add("%s: must not be negative", d.name)
		}
	}
	if c.Bridge.Workers < 0 {
		add("bridge.workers: must not be negative")
	}
	if len(c.Bots) == 0 {
		add("bots: none configured; add one with a name and the Chat API url (https://chat.botpress.cloud/<webhook id>)")
	}
	names := map[string]bool{}
	for i, b := range c.Bots {
		field := fmt.Sprintf("bots[%d]", i)
		switch {
		case b.Name == "":
			add("%s.name: must not be empty", field)
		case names[b.Name]:
			add("%s.name: %q is used by another bot", field, b.Name)
		}
		names[b.Name] = true
		if _, err := b.BaseURL(); err != nil {
			add("%s: %v", field, err)
		}
	}
	errs = append(errs, c.Slack.validate()...)
	errs = append(errs, c.Matrix.validate()...)
	if len(c.Routes) == 0 && len(c.Bots) > 1 {
		add("routes: with several bots, routes must say which bot answers where")
	}
	for i, r := range c.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		switch bridge.Platform(r.Platform) {
		case "", bridge.PlatformSlack, bridge.PlatformMatrix, bridge.PlatformConsole:
		default:
			add("%s.platform: %q is not slack, matrix or console (leave it out for all)", field, r.Platform)
		}
	}
	if len(errs) == 0 {
		if _, err := bridge.NewRouter(c.BridgeRoutes(), c.botNames()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// BaseURL returns the bot's Chat API base URL from url, or from api_url and
// webhook_id.
func (b BotConfig) BaseURL() (string, error) {
	switch {
	case b.URL != "" && b.WebhookID != "":
		return "", errors.New("url and webhook_id: give one of them, not both")
	case b.URL != "":
		if err := checkURL(b.URL); err != nil {
			return "", fmt.Errorf("url: %v", err)
		}
		return strings.TrimRight(b.URL, "/"), nil
	case b.WebhookID != "":
		api := b.APIURL
		if api == "" {
			api = DefaultAPIURL
		}
		if err := checkURL(api); err != nil {
			return "", fmt.Errorf("api_url: %v", err)
		}
		if strings.ContainsAny(b.WebhookID, "/?#") {
			return "", fmt.Errorf("webhook_id: %q is not a webhook id (the last part of the Chat API URL)", b.WebhookID)
		}
		return strings.TrimRight(api, "/") + "/" + b.WebhookID, nil
	}
	return "", errors.New("url: missing; give the Chat API URL (https://chat.botpress.cloud/<webhook id>) or webhook_id")
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must start with https:// or http://", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func (c *Config) botNames() []string {
	var names []string
	for _, b := range c.Bots {
		names = append(names, b.Name)
	}
	return names
}

// BridgeRoutes returns the routes for the engine: the configured ones, or
// with a single bot and none configured, one route to it for every room.
func (c *Config) BridgeRoutes() []bridge.Route {
	if len(c.Routes) == 0 && len(c.Bots) == 1 {
		return []bridge.Route{{Bot: c.Bots[0].Name}}
	}
	routes := make([]bridge.Route, 0, len(c.Routes))
	for _, r := range c.Routes {
		routes = append(routes, bridge.Route{
			Bot:       r.Bot,
			Platform:  bridge.Platform(r.Platform),
			Rooms:     r.Rooms,
			DM:        bridge.DMFilter(r.DM),
			Answer:    bridge.Answer(r.Answer),
			Scope:     bridge.Scope(r.Scope),
			Users:     r.Users,
			AllowBots: r.AllowBots,
			ResetWord: r.ResetWord,
		})
	}
	return routes
}
