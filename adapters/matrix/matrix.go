// Package matrix connects botbridge to Matrix as an ordinary bot account.
//
// The adapter runs its own /sync loop: it moves the sync token forward only
// after every message of a batch was stored by the bridge, joins the rooms
// it is invited to when a route allows it, and hands people's messages to
// the bridge (mentions, threads, edits, files). It posts the bot's replies
// with transaction ids derived from the Chat API message id, in threads or
// as replies, with media uploaded to the media repository. End-to-end
// encrypted rooms work through mautrix's crypto helper (build with the goolm
// tag; no cgo), which keeps its keys in the bridge's database (SQLite or
// PostgreSQL).
//
// When several replicas share a PostgreSQL store, the bridge runs the
// adapter in one of them at a time, under the lease of every Matrix room
// (bridge.MatrixLease): the sync loop, the encryption state and the posts
// are that replica's. Its writes of the sync token carry the lease's
// fence.
package matrix

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/logging"
	"github.com/botbridge/botbridge/bridge/media"
)

// Platform is the platform name of the adapter's rooms.
const Platform = bridge.PlatformMatrix

// The dialects of Config.DB.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Defaults of Config.
const (
	DefaultDeviceName      = "botbridge"
	DefaultMaxFileBytes    = 20 << 20
	DefaultDownloadTimeout = 30 * time.Second
	DefaultSyncTimeout     = 30 * time.Second
	DefaultTimelineLimit   = 100
	DefaultRetryMin        = time.Second
	DefaultRetryMax        = time.Minute
	DefaultDecryptTimeout  = time.Hour
	// DefaultMaxPendingPerSender and DefaultMaxPendingPerRoom bound the
	// encrypted messages waiting for their keys: a person whose client is
	// slow to share keys sends a few before they come, not dozens.
	DefaultMaxPendingPerSender = 50
	DefaultMaxPendingPerRoom   = 200
)

// Cursors is the part of the bridge's store the adapter keeps named values
// in: the sync token, the device and access token of a password login.
type Cursors interface {
	Cursor(ctx context.Context, name string) (string, error)
	SetCursor(ctx context.Context, name, value string) error
}

// Config configures an Adapter. HomeserverURL, Store and DB are required,
// and either AccessToken or UserID with Password.
type Config struct {
	// HomeserverURL is the client-server API base URL, such as
	// https://matrix.example.org.
	HomeserverURL string
	// UserID is the bot's account, @bot:example.org. With AccessToken it is
	// optional and checked against the token's owner.
	UserID id.UserID
	// AccessToken logs in as the device the token belongs to.
	AccessToken string
	// Password logs in once as UserID; the device and its token are kept in
	// Store and reused, so that the device and its encryption keys stay.
	Password string
	// DeviceName is the display name of the device a password login makes.
	// Default "botbridge".
	DeviceName string

	// Store keeps the adapter's cursors and the encrypted messages waiting
	// for their keys, and moves a room's conversations when the room is
	// upgraded (the bridge's store).
	Store Store
	// DB is the database that holds the room state cache and, with
	// encryption, the crypto store: the bridge's own (its SQLite file, or
	// its PostgreSQL database through pgx's database/sql driver). The
	// adapter never closes it.
	DB *sql.DB
	// Dialect is DB's SQL dialect: DialectSQLite (the default) or
	// DialectPostgres.
	Dialect string
	// PickleKey turns end-to-end encryption on and encrypts the secrets of
	// the crypto store. Losing it loses the device's keys.
	PickleKey string
	// RecoveryKey is the recovery key of the bot's account (Matrix's
	// base58 recovery key, as Element shows it). With encryption, the
	// adapter sets up cross-signing once (master, self-signing and
	// user-signing keys, kept in the account's secret storage under this
	// key) and a key backup, and signs its device; on a new device (its
	// store lost) it restores both with this key and signs the new device.
	// Empty: the adapter generates one when it sets up cross-signing and
	// writes it to RecoveryKeyOut, once; it is never stored.
	RecoveryKey string
	// RecoveryKeyOut is where a generated recovery key is written, once,
	// with what to do with it. Default: standard error.
	RecoveryKeyOut io.Writer
	// Trust decides whose messages in encrypted rooms the bot reads, by the
	// trust of the sending device: TrustAny (default), TrustCrossSigned or
	// TrustVerified. A refused message is counted (Stats.Untrusted) and
	// logged, and its sender, when the message was meant for the bot (a
	// direct chat or a mention) and a route admits them, gets one short
	// notice saying why, once per device while the adapter runs.
	Trust Trust

	// Admit decides, before the adapter spends anything on it, whether the
	// bridge takes messages of a sender in a room at all (a route lets the
	// sender talk to a bot there; bridge.Router.Admits). It sees the room,
	// its alias when the directory confirms it, the sender's id and whether
	// the room is a direct chat. The adapter asks it for an invite (the
	// inviter; refused invites are rejected) and for an encrypted message it
	// cannot decrypt yet (refused ones are not kept to wait for their keys).
	// Nil admits everyone.
	Admit func(bridge.Inbound) bool
	// MaxPendingPerSender and MaxPendingPerRoom cap the encrypted messages
	// that wait for their keys, per sender and per room; those past a cap
	// are given up (counted in Stats.Capped, logged). Defaults 50 and 200;
	// at most 1000 wait in all.
	MaxPendingPerSender, MaxPendingPerRoom int

	// MaxFileBytes caps files in both directions: what OpenFile serves and
	// what Send downloads from the bot's URLs. Default 20 MiB.
	MaxFileBytes int64
	// DownloadTimeout bounds the download of one of the bot's media URLs.
	// Default 30 seconds.
	DownloadTimeout time.Duration
	// SyncTimeout is how long one /sync request waits for events. Default
	// 30 seconds.
	SyncTimeout time.Duration
	// TimelineLimit is how many events per room one /sync returns; the
	// adapter pages back through /messages for the rest. Default 100.
	TimelineLimit int
	// RetryMin and RetryMax bound the backoff of the sync loop, of logins
	// and of retries of the bridge's handler. Defaults 1 second and 1 minute.
	RetryMin, RetryMax time.Duration
	// DecryptTimeout is how long an encrypted message waits for its keys
	// before it is given up. Default 1 hour.
	DecryptTimeout time.Duration

	// AllowPrivateURLs lets the adapter download the bot's media from
	// loopback and private addresses. Off by default, so that a bot's reply
	// (which may repeat a URL a person gave) cannot make the bridge fetch
	// from its own network and post the result.
	AllowPrivateURLs bool

	// HTTPClient talks to the homeserver; it must not have a Timeout
	// shorter than SyncTimeout. Default: a client of its own.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time

	// OnDecryptFailure, if set, is called for each encrypted message that
	// could not be decrypted when it came, with a short reason; for
	// metrics. It must not block.
	OnDecryptFailure func(reason string)
	// OnSenderTrust, if set, is called for each message decrypted, with how
	// far its sender can be trusted: mautrix's trust state of the sending
	// device ("verified", "cross-signed-tofu", "unverified",
	// "unknown-device", "device-key-mismatch", "blacklisted"…) or
	// "forwarded" when its keys came through another device; for metrics.
	// Messages of senders the bot cannot trust are accepted and logged once
	// per sender device. It must not block.
	OnSenderTrust func(state string)
	// OnRateLimit, if set, is called each time the homeserver answers
	// M_LIMIT_EXCEEDED and the adapter waits; for metrics. It must not block.
	OnRateLimit func(wait time.Duration)
}

// Trust is a policy of which senders' devices the bot accepts messages
// from in encrypted rooms.
type Trust string

// Trust policies.
const (
	// TrustAny reads every message the bot can decrypt; senders it cannot
	// trust are logged and counted.
	TrustAny Trust = "any"
	// TrustCrossSigned reads messages from devices their owner cross-signed.
	TrustCrossSigned Trust = "cross_signed"
	// TrustVerified reads messages from devices the bot verified, directly
	// or through their owner's cross-signing after the owner verified the
	// bot (SAS).
	TrustVerified Trust = "verified"
)

// Stats counts what happened to encrypted messages; it is for metrics.
type Stats struct {
	// Undecryptable counts encrypted messages that could not be decrypted
	// when they arrived.
	Undecryptable int64
	// DecryptedLate counts those decrypted later, once their keys came.
	DecryptedLate int64
	// Lost counts those given up: keys that never came within
	// DecryptTimeout, errors that keys cannot fix, or no room left to wait
	// (Capped).
	Lost int64
	// Refused counts undecryptable messages not kept to wait for their keys
	// because Admit refused their sender in their room.
	Refused int64
	// Capped counts undecryptable messages given up because too many of
	// their sender's, or of their room's, were waiting already.
	Capped int64
	// Untrusted counts decrypted messages the trust policy refused.
	Untrusted int64
}

// Adapter is the Matrix adapter. Create it with New and start it with Run;
// Send and the other capabilities wait for Run to have logged in.
type Adapter struct {
	opts Config
	log  *slog.Logger
	now  func() time.Time

	cli     *mautrix.Client
	token   atomic.Pointer[string] // the access token every request carries
	fetcher *media.Fetcher
	sync    *dispatcher
	state   *sqlstatestore.SQLStateStore

	// standby downloads files while the adapter does not run here (another
	// replica runs it), with standbyToken, the token that replica keeps:
	// a client of its own, so that it never touches the token of cli.
	standby      *mautrix.Client
	standbyToken atomic.Pointer[string]

	// crypto is nil without encryption.
	crypto *cryptohelper.CryptoHelper

	// user and device are set once by the first successful login, before
	// connected is closed.
	user          id.UserID
	device        id.DeviceID
	connected     chan struct{}
	connectedOnce sync.Once
	running       atomic.Bool

	mu          sync.Mutex
	status      error
	displayName string
	// aliases are the canonical aliases rooms claim; directory is what the
	// homeserver's room directory says of aliases (see confirmAlias).
	aliases   map[id.RoomID]string
	directory map[string]dirEntry
	removed   map[id.RoomID]string
	reads     map[id.RoomID]id.EventID
	readWake  chan struct{}
	// trustSeen holds the sender devices whose doubtful trust was logged.
	trustSeen map[string]struct{}

	// budget is the most content one event carries (maxContentBytes; tests
	// raise it to meet the homeserver's limit).
	budget  int
	limiter logging.Limiter
	// pending is touched by the sync loop only.
	pending []pending

	// identity holds the bot's cross-signing and key backup state; the
	// Run goroutine owns it.
	identity identity
	// verify answers verification requests; nil without encryption.
	verify *verifier
	// refusedSeen holds the sender devices told why the trust policy
	// refused their messages.
	refusedSeen map[string]struct{}
	// followed maps rooms whose upgrade the adapter followed to their
	// replacements; the sync loop owns it.
	followed map[id.RoomID]id.RoomID
	// keycaps queues the choices Send posted, for keycapLoop to react to.
	keycaps chan keycapJob

	undecryptable, decryptedLate, lost, refused, capped, untrusted atomic.Int64
}

var (
	_ bridge.Adapter    = (*Adapter)(nil)
	_ bridge.Editor     = (*Adapter)(nil)
	_ bridge.Deleter    = (*Adapter)(nil)
	_ bridge.Typer      = (*Adapter)(nil)
	_ bridge.FileOpener = (*Adapter)(nil)
	_ bridge.Recoverer  = (*Adapter)(nil)
	_ bridge.Checker    = (*Adapter)(nil)
)

// New checks opts and returns an adapter, not yet connected.
func New(opts Config) (*Adapter, error) {
	var errs []error
	if opts.HomeserverURL == "" {
		errs = append(errs, errors.New("matrix: no homeserver URL"))
	}
	switch {
	case opts.AccessToken != "" && opts.Password != "":
		errs = append(errs, errors.New("matrix: give an access token or a password, not both"))
	case opts.AccessToken == "" && (opts.UserID == "" || opts.Password == ""):
		errs = append(errs, errors.New("matrix: give an access token, or a user id and a password"))
	}
	if opts.UserID != "" {
		if _, _, err := opts.UserID.Parse(); err != nil {
			errs = append(errs, fmt.Errorf("matrix: user id %q: %w", opts.UserID, err))
		}
	}
	if opts.Store == nil || opts.DB == nil {
		errs = append(errs, errors.New("matrix: no store"))
	}
	switch opts.Dialect {
	case "", DialectSQLite, DialectPostgres:
	default:
		errs = append(errs, fmt.Errorf("matrix: database dialect %q is not %s or %s", opts.Dialect, DialectSQLite, DialectPostgres))
	}
	switch opts.Trust {
	case "", TrustAny, TrustCrossSigned, TrustVerified:
	default:
		errs = append(errs, fmt.Errorf("matrix: trust policy %q is not any, cross_signed or verified", opts.Trust))
	}
	if opts.RecoveryKey != "" {
		if opts.PickleKey == "" {
			errs = append(errs, errors.New("matrix: a recovery key needs encryption (a pickle key)"))
		}
		if _, err := recoveryKeyBytes(opts.RecoveryKey); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	setDefault(&opts.DeviceName, DefaultDeviceName)
	setDefault(&opts.MaxFileBytes, DefaultMaxFileBytes)
	setDefault(&opts.DownloadTimeout, DefaultDownloadTimeout)
	setDefault(&opts.SyncTimeout, DefaultSyncTimeout)
	setDefault(&opts.TimelineLimit, DefaultTimelineLimit)
	setDefault(&opts.RetryMin, DefaultRetryMin)
	setDefault(&opts.RetryMax, DefaultRetryMax)
	setDefault(&opts.DecryptTimeout, DefaultDecryptTimeout)
	setDefault(&opts.MaxPendingPerSender, DefaultMaxPendingPerSender)
	setDefault(&opts.MaxPendingPerRoom, DefaultMaxPendingPerRoom)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Trust == "" {
		opts.Trust = TrustAny
	}
	if opts.RecoveryKeyOut == nil {
		opts.RecoveryKeyOut = os.Stderr
	}

	a := &Adapter{
		opts: opts,
		log:  opts.Logger.With(bridge.LogComponent, "matrix"),
		now:  opts.Now,
		fetcher: media.NewFetcher(media.FetcherConfig{
			MaxBytes: opts.MaxFileBytes, Timeout: opts.DownloadTimeout, AllowPrivate: opts.AllowPrivateURLs,
		}),
		connected: make(chan struct{}),
		status:    errors.New("matrix: not connected yet"),
		aliases:   make(map[id.RoomID]string),
		directory: make(map[string]dirEntry),
		removed:   make(map[id.RoomID]string),
		reads:     make(map[id.RoomID]id.EventID),
		readWake:  make(chan struct{}, 1),
		trustSeen: make(map[string]struct{}),

		refusedSeen: make(map[string]struct{}),
		followed:    make(map[id.RoomID]id.RoomID),
		keycaps:     make(chan keycapJob, keycapQueue),
	}
	a.budget = maxContentBytes
	a.limiter.Now = opts.Now

	cli, err := mautrix.NewClient(strings.TrimRight(opts.HomeserverURL, "/"), "", "")
	if err != nil {
		return nil, fmt.Errorf("matrix: homeserver URL %q: %w", opts.HomeserverURL, err)
	}
	// The token is added by the transport rather than kept in cli.AccessToken,
	// which mautrix reads without a lock: a login while sends are in flight
	// must not race with them.
	base := opts.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	hc := *base
	hc.Transport = bearer{base: base.Transport, token: &a.token, origin: origin(cli.HomeserverURL)}
	cli.Client = &hc
	// Retries and rate limits are handled here, per room and with ctx.
	cli.DefaultHTTPRetries = 0
	cli.IgnoreRateLimit = true
	cli.Log = zerologTo(a.log)
	a.sync = newDispatcher()
	cli.Syncer = a.sync
	a.cli = cli
	if a.standby, err = mautrix.NewClient(cli.HomeserverURL.String(), "", ""); err != nil {
		return nil, fmt.Errorf("matrix: homeserver URL %q: %w", opts.HomeserverURL, err)
	}
	shc := *base
	shc.Transport = bearer{base: base.Transport, token: &a.standbyToken, origin: origin(cli.HomeserverURL)}
	a.standby.Client = &shc
	a.standby.DefaultHTTPRetries = 0
	a.standby.Log = cli.Log
	return a, nil
}

func setDefault[T int | int64 | time.Duration | string](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Platform implements bridge.Adapter.
func (a *Adapter) Platform() bridge.Platform { return Platform }

// Ready implements bridge.Checker: nil while logged in and syncing, else
// what is wrong and how to fix it.
func (a *Adapter) Ready() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Stats returns the counters of encrypted messages.
func (a *Adapter) Stats() Stats {
	return Stats{
		Undecryptable: a.undecryptable.Load(),
		DecryptedLate: a.decryptedLate.Load(),
		Lost:          a.lost.Load(),
		Refused:       a.refused.Load(),
		Capped:        a.capped.Load(),
		Untrusted:     a.untrusted.Load(),
	}
}

func (a *Adapter) setStatus(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = err
}

// waitConnected blocks until Run has logged in, or ctx ends.
func (a *Adapter) waitConnected(ctx context.Context) error {
	select {
	case <-a.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("matrix: not connected: %w", context.Cause(ctx))
	}
}

// bearer adds the current access token to requests to the homeserver's
// origin, and to no other: the client follows redirects (a media repository
// may send downloads to a CDN), and the token must not follow them.
type bearer struct {
	base   http.RoundTripper
	token  *atomic.Pointer[string]
	origin string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	base := b.base
	if base == nil {
		base = http.DefaultTransport
	}
	if t := b.token.Load(); t != nil && *t != "" && r.Header.Get("Authorization") == "" && origin(r.URL) == b.origin {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+*t)
	}
	return base.RoundTrip(r)
}

// origin returns the scheme, host and port of u, lowercased and with the
// scheme's default port made explicit, so that http://HS and
// http://hs:80 are one origin.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func (a *Adapter) setToken(token string) { a.token.Store(&token) }
