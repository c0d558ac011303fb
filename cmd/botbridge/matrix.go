package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"maunium.net/go/mautrix/crypto/utils"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
)

// MatrixConfig configures the Matrix adapter; see config.example.yaml.
// An empty homeserver_url leaves Matrix off.
type MatrixConfig struct {
	HomeserverURL string `yaml:"homeserver_url"`
	UserID        string `yaml:"user_id"`
	AccessToken   string `yaml:"access_token" secret:"true"`
	Password      string `yaml:"password" secret:"true"`
	DeviceName    string `yaml:"device_name"` // default botbridge
	// Encryption turns end-to-end encryption on; it needs PickleKey.
	Encryption bool   `yaml:"encryption"`
	PickleKey  string `yaml:"pickle_key" secret:"true"`
	// RecoveryKey opens the secret storage of the bot's account, where its
	// cross-signing keys and the key of its key backup are; empty: one is
	// generated at the first start and printed once.
	RecoveryKey string `yaml:"recovery_key" secret:"true"`
	// Trust is whose messages in encrypted rooms the bot reads: any
	// (default), cross_signed or verified.
	Trust string `yaml:"trust"`
	// MaxFileMB caps files both ways, in MiB; default 20.
	MaxFileMB        int64         `yaml:"max_file_mb"`
	DownloadTimeout  time.Duration `yaml:"download_timeout"` // default 30s
	AllowPrivateURLs bool          `yaml:"allow_private_urls"`
	SyncTimeout      time.Duration `yaml:"sync_timeout"`    // default 30s
	DecryptTimeout   time.Duration `yaml:"decrypt_timeout"` // default 1h
	// MaxPendingPerSender and MaxPendingPerRoom cap the encrypted messages
	// that wait for their keys; defaults 50 and 200.
	MaxPendingPerSender int `yaml:"max_pending_per_sender"`
	MaxPendingPerRoom   int `yaml:"max_pending_per_room"`
}

// minPickleKey is the shortest pickle key accepted: it guards the
// encryption keys in the store.
const minPickleKey = 16

// validate checks the matrix section; each error names its field.
func (c MatrixConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.HomeserverURL == "" {
		if c.UserID != "" || c.AccessToken != "" || c.Password != "" {
			add("matrix.homeserver_url: must be set to use Matrix (the client API's base URL, such as https://matrix.example.org)")
		}
		return errs
	}
	if err := checkURL(c.HomeserverURL); err != nil {
		add("matrix.homeserver_url: %v", err)
	}
	if c.UserID != "" {
		if _, _, err := id.UserID(c.UserID).ParseAndValidateRelaxed(); err != nil {
			add("matrix.user_id: %q is not a Matrix user id like @botbridge:example.org", c.UserID)
		}
	}
	switch {
	case c.AccessToken != "" && c.Password != "":
		add("matrix.access_token and matrix.password: give one of them, not both")
	case c.AccessToken == "" && c.Password == "":
		add("matrix.access_token: missing; give the bot account's access token, or matrix.user_id and matrix.password")
	case c.Password != "" && c.UserID == "":
		add("matrix.user_id: must be set with matrix.password")
	}
	switch {
	case c.Encryption && len(c.PickleKey) < minPickleKey:
		add("matrix.pickle_key: must be at least %d characters with matrix.encryption: a long random secret that encrypts the bot's keys in the store; keep it, the keys are lost without it", minPickleKey)
	case !c.Encryption && c.PickleKey != "":
		add("matrix.pickle_key: set, but matrix.encryption is false; set matrix.encryption: true to use it")
	}
	if c.RecoveryKey != "" {
		switch {
		case !c.Encryption:
			add("matrix.recovery_key: set, but matrix.encryption is false; the recovery key is for the bot's encryption identity")
		case utils.DecodeBase58RecoveryKey(c.RecoveryKey) == nil:
			add("matrix.recovery_key: not a Matrix recovery key (48 characters in groups of four, as botbridge printed it at its first start or Element shows it)")
		}
	}
	switch matrix.Trust(c.Trust) {
	case "", matrix.TrustAny:
	case matrix.TrustCrossSigned, matrix.TrustVerified:
		if !c.Encryption {
			add("matrix.trust: %s needs matrix.encryption: true; the policy judges the devices of encrypted messages", c.Trust)
		}
	default:
		add("matrix.trust: %q is not any, cross_signed or verified", c.Trust)
	}
	if c.MaxFileMB < 0 {
		add("matrix.max_file_mb: must not be negative")
	}
	if c.MaxPendingPerSender < 0 {
		add("matrix.max_pending_per_sender: must not be negative (0 is the default, 50)")
	}
	if c.MaxPendingPerRoom < 0 {
		add("matrix.max_pending_per_room: must not be negative (0 is the default, 200)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"matrix.download_timeout", c.DownloadTimeout}, {"matrix.sync_timeout", c.SyncTimeout}, {"matrix.decrypt_timeout", c.DecryptTimeout}} {
		if d.v < 0 {
			add("%s: must not be negative", d.name)
		}
	}
	return errs
}

// matrixAdapter builds the Matrix adapter when the configuration enables it,
// else returns nil.
func (s *Service) matrixAdapter(ctx context.Context) (bridge.Adapter, error) {
	if s.Config.Matrix.HomeserverURL == "" {
		return nil, nil
	}
	opts, err := s.matrixConfig()
	if err != nil {
		return nil, err
	}
	return matrix.New(opts)
}

// matrixConfig turns the configuration into the adapter's Config. The
// adapter asks the routes (Router.Admits) whether to join a room it is
// invited to, and whether to keep a message it cannot decrypt yet.
func (s *Service) matrixConfig() (matrix.Config, error) {
	c := s.Config.Matrix
	router := s.Router
	db, err := s.Store.SQL()
	if err != nil {
		return matrix.Config{}, fmt.Errorf("matrix: open the store for the room state and encryption keys: %w", err)
	}
	opts := matrix.Config{
		HomeserverURL:       c.HomeserverURL,
		UserID:              id.UserID(c.UserID),
		AccessToken:         c.AccessToken,
		Password:            c.Password,
		DeviceName:          c.DeviceName,
		Store:               s.Store,
		DB:                  db,
		Dialect:             matrix.DialectSQLite,
		Admit:               router.Admits,
		MaxFileBytes:        c.MaxFileMB << 20,
		DownloadTimeout:     c.DownloadTimeout,
		AllowPrivateURLs:    c.AllowPrivateURLs,
		SyncTimeout:         c.SyncTimeout,
		DecryptTimeout:      c.DecryptTimeout,
		MaxPendingPerSender: c.MaxPendingPerSender,
		MaxPendingPerRoom:   c.MaxPendingPerRoom,
		Logger:              s.Log,
		OnDecryptFailure:    s.Metrics.DecryptionFailed,
		OnSenderTrust:       s.Metrics.SenderTrust,
		OnRateLimit: func(wait time.Duration) {
			s.Metrics.RateLimited(bridge.PlatformMatrix, wait)
		},
	}
	if s.Config.Store.Driver == DriverPostgres {
		opts.Dialect = matrix.DialectPostgres
	}
	if c.Encryption {
		opts.PickleKey, opts.RecoveryKey, opts.Trust = c.PickleKey, c.RecoveryKey, matrix.Trust(c.Trust)
		// A recovery key generated at the first start is shown once, to
		// the operator, never logged.
		opts.RecoveryKeyOut = os.Stderr
	}
	return opts, nil
}
