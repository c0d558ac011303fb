package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
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
	// Sync is full (every commit survives a power loss; the default) or
	// normal (a killed process loses nothing, a power loss may lose the
	// last commits; faster). sqlite only.
	Sync string `yaml:"sync"`
}

// HTTPConfig configures the HTTP listeners, public and admin, and the
// limits that keep a slow or idle client from holding them.
type HTTPConfig struct {
	// Addr is host:port of the public listener: file links (/files/), the
	// Slack Events API (/slack/...) and later Botpress webhooks
	// (/botpress/), what a reverse proxy passes on. Empty turns it off.
	Addr string `yaml:"addr"`
	// AdminAddr is host:port of the admin listener: /healthz, /readyz and
	// /metrics, without authentication. Default DefaultAdminAddr, on
	// loopback; empty turns it off.
	AdminAddr string `yaml:"admin_addr"`
	// PublicURL is how the bot reaches the public listener, for links to
	// files people send; empty gives the bot the file's name and permalink.
	PublicURL string `yaml:"public_url"`
	// ReadHeaderTimeout is the longest a request's headers may take to
	// arrive; default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout is the longest a whole request, body included, may take
	// to arrive; default 15s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout is the longest an answer may take, from the end of the
	// request's headers, except a file link's (FileTimeout); default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// FileTimeout is the longest one file link may take to serve; default
	// 10m.
	FileTimeout time.Duration `yaml:"file_timeout"`
	// IdleTimeout closes a keep-alive connection idle for this long;
	// default 90s, longer than the usual proxy's 60s so that the proxy
	// closes first.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderKB caps a request's headers, in KiB; larger requests get
	// 431. Default 64.
	MaxHeaderKB int `yaml:"max_header_kb"`
	// MaxConnections caps the open connections of each listener; past it,
	// a new connection waits in the kernel's accept queue until one closes.
	// Default 512.
	MaxConnections int `yaml:"max_connections"`
}

// BridgeConfig tunes the engine.
type BridgeConfig struct {
	Workers int `yaml:"workers"` // default 64
	// ListenerIdle: default the watch window without a webhook, 10m with one.
	ListenerIdle    time.Duration `yaml:"listener_idle"`
	WatchWindow     time.Duration `yaml:"watch_window"`      // default 168h
	MaxStreams      int           `yaml:"max_streams"`       // default 10000
	SweepBudget     int           `yaml:"sweep_budget"`      // requests a minute per bot; default 300
	SweepInterval   time.Duration `yaml:"sweep_interval"`    // default 15s
	WebhookTimeout  time.Duration `yaml:"webhook_timeout"`   // default 30s
	StreamThrottle  time.Duration `yaml:"stream_throttle"`   // default 1s
	TypingTimeout   time.Duration `yaml:"typing_timeout"`    // default 2m
	Retention       time.Duration `yaml:"retention"`         // default 168h
	ForgetIdle      time.Duration `yaml:"forget_idle"`       // default 2160h (90 days)
	NoAccessTimeout time.Duration `yaml:"no_access_timeout"` // default 30m
	OfferTTL        time.Duration `yaml:"offer_ttl"`         // default 24h
	DrainTimeout    time.Duration `yaml:"drain_timeout"`     // default 5s
	// LeaseTTL and LeaseRenew are the leases' time to live and how often
	// they are renewed, when several replicas share a PostgreSQL store:
	// a dead replica's conversations are taken over within LeaseTTL.
	LeaseTTL   time.Duration `yaml:"lease_ttl"`   // default 12s (bridge.DefaultLeaseTTL)
	LeaseRenew time.Duration `yaml:"lease_renew"` // default 4s; at most half of lease_ttl
}

// BotConfig is one Botpress bot.
type BotConfig struct {
	Name string `yaml:"name"`
	// URL is the Chat API base URL, https://chat.botpress.cloud/<webhook id>;
	// the webhook id lets anyone talk to the bot, so it is a secret.
	URL string `yaml:"url" secret:"true"`
	// WebhookID with APIURL is the other way to give URL.
	WebhookID string `yaml:"webhook_id" secret:"true"`
	APIURL    string `yaml:"api_url"` // default https://chat.botpress.cloud
	// EncryptionKey is the Chat integration's Encryption Key; empty uses
	// createUser and keeps user keys in the store.
	EncryptionKey string `yaml:"encryption_key" secret:"true"`
	// WebhookSecret is the Chat integration's Webhook Secret: set, the bot's
	// messages come by webhook to <http.public_url>/botpress/<name>.
	WebhookSecret string `yaml:"webhook_secret" secret:"true"`
	// DisplayName and IconURL are the name and picture the bot's Slack
	// posts carry (with the chat:write.customize scope); Description is
	// shown on the App Home tab.
	DisplayName string `yaml:"display_name"`
	IconURL     string `yaml:"icon_url"`
	Description string `yaml:"description"`
	// Events says how the bot is told of reactions, people joining and
	// agent threads' context: message (default) or event (a Chat API
	// custom event).
	Events string `yaml:"events"`
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
	// Team limits the route to one Slack workspace (team id, or enterprise
	// id of an org-wide install).
	Team string `yaml:"team"`
	// CommandReplies is where answers to slash commands go: ephemeral
	// (default) or channel.
	CommandReplies string `yaml:"command_replies"`
	// Welcome sends the bot an event when someone joins a room of the
	// route.
	Welcome bool `yaml:"welcome"`
	// Prompts are suggested in new agent threads with the route's bot.
	Prompts []PromptConfig `yaml:"prompts"`
}

// PromptConfig is a suggested prompt of an agent thread.
type PromptConfig struct {
	Title   string `yaml:"title"`
	Message string `yaml:"message"`
}

// DefaultAPIURL is Botpress Cloud's Chat API.
const DefaultAPIURL = "https://chat.botpress.cloud"

// DefaultAdminAddr is where the admin listener (health, metrics) listens
// unless http.admin_addr says otherwise: loopback only, and not 9090, the
// port the single listener of earlier versions was shown on, so that their
// configurations keep starting.
const DefaultAdminAddr = "127.0.0.1:9091"

// defaults returns the configuration before the file is applied.
func defaults() Config {
	return Config{
		Log:   LogConfig{Level: "info", Format: "text"},
		Store: StoreConfig{Driver: DriverSQLite, Path: "botbridge.db"},
		HTTP: HTTPConfig{
			AdminAddr:         DefaultAdminAddr,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			FileTimeout:       10 * time.Minute,
			IdleTimeout:       90 * time.Second,
			MaxHeaderKB:       64,
			MaxConnections:    512,
		},
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
// value with lookup (see expand), and validates it.
//
// A field tagged secret:"true" holds a secret (a key, token, password or
// webhook id): a ${VAR} in it must not expand to empty, and no error quotes
// its text.
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
	if err := expandEnv(reflect.ValueOf(&cfg).Elem(), "", false, lookup); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// expandEnv replaces the ${VAR} references in every string of v with the
// variables' values from lookup; field names each error. See expand.
func expandEnv(v reflect.Value, path string, secret bool, lookup func(string) (string, bool)) error {
	switch v.Kind() {
	case reflect.String:
		s, err := expand(v.String(), path, secret, lookup)
		if err != nil {
			return err
		}
		v.SetString(s)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if err := expandEnv(v.Field(i), join(path, name), f.Tag.Get("secret") == "true", lookup); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := expandEnv(v.Index(i), fmt.Sprintf("%s[%d]", path, i), secret, lookup); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return expandEnv(v.Elem(), path, secret, lookup)
		}
	}
	return nil
}

// expand expands one value of the field at path:
//
//   - ${NAME} is the variable's value; a variable that is not set is an
//     error, and so is an empty one in a secret field, where it would turn a
//     feature off or leave it without its key without a word;
//   - $$ is a literal $;
//   - $NAME (a variable without braces) and ${NAME:-default} or any other
//     shell form are errors that say what to write instead;
//   - a $ before anything else (a digit, a space, the end) is kept.
//
// Errors never quote the text of a secret field, only variable names.
func expand(s, path string, secret bool, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var (
		b       strings.Builder
		missing []string
	)
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", fmt.Errorf("%s: a ${ has no closing }: write ${NAME} to read a variable, or $$ for a literal $", path)
			}
			inner := rest[1:end]
			name := envName(inner)
			switch {
			case name == "":
				if secret {
					return "", fmt.Errorf("%s: a ${…} that is not a variable name: write ${NAME} (letters, digits and _), or $$ for a literal $", path)
				}
				return "", fmt.Errorf("%s: ${%s} is not a variable name: write ${NAME} (letters, digits and _), or $$ for a literal $", path, inner)
			case name != inner:
				return "", fmt.Errorf("%s: ${%s…}: only ${%s} is supported, without a default or any other shell form: set %s in the environment", path, name, name, name)
			}
			val, ok := lookup(name)
			switch {
			case !ok:
				missing = append(missing, name)
			case val == "" && secret:
				return "", fmt.Errorf("%s: ${%s} is set but empty: give %s the value, or leave %s out of the file", path, name, name, path)
			}
			b.WriteString(val)
			i += 1 + end + 1
		case envName(rest) != "":
			name := envName(rest)
			if secret && s != "$"+name {
				return "", fmt.Errorf("%s: a $ followed by a name: write ${NAME} to read a variable, or $$ for a literal $", path)
			}
			return "", fmt.Errorf("%s: $%s: write ${%s} to read the variable, or $$%s for a literal $", path, name, name, name)
		default:
			b.WriteByte('$')
			i++
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: environment variable %s is not set", path, strings.Join(missing, ", "))
	}
	return b.String(), nil
}

// envName returns the variable name at the start of s: a letter or _, then
// letters, digits and _; or "".
func envName(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return s[:i]
	}
	return s
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
	default:
		add("store.driver: %q is not %s or %s", c.Store.Driver, DriverSQLite, DriverPostgres)
	}
	switch c.Store.Sync {
	case "", "full", "normal":
	default:
		add("store.sync: %q is not full or normal", c.Store.Sync)
	}
	if c.Store.MaxSizeMB < 0 {
		add("store.max_size_mb: must not be negative (0 is no cap)")
	}
	if c.HTTP.AdminAddr != "" && c.HTTP.AdminAddr == c.HTTP.Addr && !strings.HasSuffix(c.HTTP.Addr, ":0") {
		add("http.admin_addr: %s is also http.addr: give the admin listener (health, metrics) another port", c.HTTP.AdminAddr)
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
		v    int64
	}{
		{"http.read_header_timeout", int64(c.HTTP.ReadHeaderTimeout)}, {"http.read_timeout", int64(c.HTTP.ReadTimeout)},
		{"http.write_timeout", int64(c.HTTP.WriteTimeout)}, {"http.file_timeout", int64(c.HTTP.FileTimeout)},
		{"http.idle_timeout", int64(c.HTTP.IdleTimeout)}, {"http.max_header_kb", int64(c.HTTP.MaxHeaderKB)},
		{"http.max_connections", int64(c.HTTP.MaxConnections)},
	} {
		if d.v <= 0 {
			add("%s: must be positive (leave it out for the default)", d.name)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"bridge.listener_idle", c.Bridge.ListenerIdle}, {"bridge.stream_throttle", c.Bridge.StreamThrottle},
		{"bridge.typing_timeout", c.Bridge.TypingTimeout}, {"bridge.retention", c.Bridge.Retention},
		{"bridge.drain_timeout", c.Bridge.DrainTimeout}, {"bridge.watch_window", c.Bridge.WatchWindow},
		{"bridge.webhook_timeout", c.Bridge.WebhookTimeout}, {"bridge.forget_idle", c.Bridge.ForgetIdle},
		{"bridge.no_access_timeout", c.Bridge.NoAccessTimeout}, {"bridge.offer_ttl", c.Bridge.OfferTTL},
		{"bridge.sweep_interval", c.Bridge.SweepInterval}, {"bridge.lease_ttl", c.Bridge.LeaseTTL},
		{"bridge.lease_renew", c.Bridge.LeaseRenew},
	} {
		if d.v < 0 {
			add("%s: must not be negative", d.name)
		}
	}
	ttl, renew := c.Bridge.LeaseTTL, c.Bridge.LeaseRenew
	if ttl <= 0 {
		ttl = bridge.DefaultLeaseTTL
	}
	if renew <= 0 {
		renew = bridge.DefaultLeaseRenew
	}
	if renew > ttl/2 {
		add("bridge.lease_renew: %v is more than half of bridge.lease_ttl (%v): a lease must be renewed at least twice in its time to live", renew, ttl)
	}
	if c.Bridge.Workers < 0 {
		add("bridge.workers: must not be negative")
	}
	if c.Bridge.MaxStreams < 0 {
		add("bridge.max_streams: must not be negative")
	}
	if c.Bridge.SweepBudget < 0 {
		add("bridge.sweep_budget: must not be negative")
	}
	if c.Bridge.ForgetIdle > 0 && c.Bridge.ForgetIdle < max(c.Bridge.Retention, 7*24*time.Hour) {
		add("bridge.forget_idle: must be at least bridge.retention (and 168h): a conversation is forgotten only after its messages")
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
		errs = append(errs, b.validateIdentity(field)...)
	}
	errs = append(errs, c.Slack.validate()...)
	errs = append(errs, c.validateSlackAcross(names)...)
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
		if err := checkSecretURL(b.URL); err != nil {
			return "", fmt.Errorf("url: %v (https://chat.botpress.cloud/<webhook id>)", err)
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
			return "", errors.New("webhook_id: is not a webhook id: give the last part of the Chat API URL, without /, ? or #")
		}
		return strings.TrimRight(api, "/") + "/" + b.WebhookID, nil
	}
	return "", errors.New("url: missing; give the Chat API URL (https://chat.botpress.cloud/<webhook id>) or webhook_id")
}

// checkURL checks that s is an absolute http or https URL; its errors quote
// s.
func checkURL(s string) error {
	if err := checkSecretURL(s); err != nil {
		return fmt.Errorf("%q %w", s, err)
	}
	return nil
}

// checkSecretURL is checkURL for a URL that holds a secret (a bot's URL
// holds its webhook id): its errors do not quote it.
func checkSecretURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must start with https:// or http://")
	case u.Host == "":
		return errors.New("has no host")
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
			Team:      r.Team,
			Welcome:   r.Welcome,
			Prompts:   prompts(r.Prompts),

			CommandReplies: bridge.CommandReply(r.CommandReplies),
		})
	}
	return routes
}
