package media

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/botbridge/botbridge/bridge"
)

// Links makes expiring links under the bridge's public URL for files people
// send, and serves them: the handler streams the bytes from the adapter
// (bridge.FileOpener) without keeping a copy. A link's token is sealed
// (XChaCha20-Poly1305 under a key derived from Secret): it names the
// platform, the adapter's reference of the file (for Matrix, the key that
// decrypts it), its type, name and expiry, and whoever holds the link can
// read none of it. Any bridge with the same Secret serves the links of the
// others; nothing is kept per link. It is safe for concurrent use.
type Links struct {
	cfg  LinksConfig
	aead cipher.AEAD
}

var _ bridge.FileLinker = (*Links)(nil)

// LinksConfig configures Links.
type LinksConfig struct {
	// BaseURL is the bridge's public URL as the bot reaches it, such as
	// https://bridge.example.org; links are BaseURL/files/<token>/<name>.
	// Required.
	BaseURL string
	// Secret is the key material the tokens are sealed with; at least 32
	// random bytes. Required.
	Secret []byte
	// TTL is how long a link works. Default 24 hours.
	TTL time.Duration
	// MaxBytes caps what a link serves. Default 100 MB.
	MaxBytes int64
	// Openers give the bytes of each platform's files.
	Openers map[bridge.Platform]bridge.FileOpener
	// Logger receives the failures to serve a file; default discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// FilesPath is the path under which Links serves files.
const FilesPath = "/files/"

// linkKeyInfo labels the key derived from LinksConfig.Secret, so that the
// secret could key something else without the two keys being related.
// Changing it invalidates every link made before.
const linkKeyInfo = "botbridge media.Links token v2"

// NewLinks returns Links for cfg, or an error naming the field that is
// missing or too short.
func NewLinks(cfg LinksConfig) (*Links, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("media: LinksConfig.BaseURL: required")
	}
	if len(cfg.Secret) < 32 {
		return nil, fmt.Errorf("media: LinksConfig.Secret: %d bytes, need at least 32", len(cfg.Secret))
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 100 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key, err := hkdf.Key(sha256.New, cfg.Secret, nil, linkKeyInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("media: derive the link key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("media: link cipher: %w", err)
	}
	return &Links{cfg: cfg, aead: aead}, nil
}

// fileToken is the sealed body of a link.
type fileToken struct {
	Platform bridge.Platform `json:"p"`
	Ref      string          `json:"r"`
	MIMEType string          `json:"m,omitempty"`
	Name     string          `json:"n"`
	Expires  int64           `json:"e"`
}

// tokenEncoding is strict so that a token has one spelling: a changed
// character always changes the sealed bytes and fails to open.
var tokenEncoding = base64.RawURLEncoding.Strict()

// URL returns a link to the file that works for TTL. It does no I/O.
func (f *Links) URL(p bridge.Platform, file bridge.File) string {
	name := file.Name
	if name == "" {
		name = "file"
	}
	body, _ := json.Marshal(fileToken{Platform: p, Ref: file.Ref, MIMEType: file.MIMEType, Name: name,
		Expires: f.cfg.Now().Add(f.cfg.TTL).Unix()})
	// XChaCha20's 192-bit nonces are safe to draw at random for as many
	// links as any number of replicas will ever make.
	nonce := make([]byte, f.aead.NonceSize(), f.aead.NonceSize()+len(body)+f.aead.Overhead())
	rand.Read(nonce)
	sealed := f.aead.Seal(nonce, nonce, body, nil)
	// The name in the path is for people reading the link; the file is
	// served under the sealed one.
	return strings.TrimRight(f.cfg.BaseURL, "/") + FilesPath + tokenEncoding.EncodeToString(sealed) + "/" + url.PathEscape(name)
}

var (
	errBadLink     = errors.New("bad file link")
	errExpiredLink = errors.New("expired file link")
)

// open unseals a token; a token that does not open is errBadLink whatever
// the reason, so that the answer tells nothing of the key or the format.
func (f *Links) open(token string) (fileToken, error) {
	var t fileToken
	sealed, err := tokenEncoding.DecodeString(token)
	if err != nil || len(sealed) < f.aead.NonceSize()+f.aead.Overhead() {
		return t, errBadLink
	}
	nonce, ciphertext := sealed[:f.aead.NonceSize()], sealed[f.aead.NonceSize():]
	body, err := f.aead.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return t, errBadLink
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return t, errBadLink
	}
	if f.cfg.Now().Unix() > t.Expires {
		return t, errExpiredLink
	}
	return t, nil
}

// ServeHTTP serves GET FilesPath<token>/<name> as an attachment named as
// sealed in the token (the name in the path is ignored): 404 for a token
// that does not open, 410 for an expired one, 502 when the platform cannot
// give the file.
func (f *Links) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, FilesPath)
	token, _, _ := strings.Cut(rest, "/") // the name after it is cosmetic
	if !ok || token == "" {
		http.NotFound(w, r)
		return
	}
	t, err := f.open(token)
	switch {
	case errors.Is(err, errExpiredLink):
		http.Error(w, "this file link has expired", http.StatusGone)
		return
	case err != nil:
		http.NotFound(w, r)
		return
	}
	opener := f.cfg.Openers[t.Platform]
	if opener == nil {
		http.NotFound(w, r)
		return
	}
	body, mt, err := opener.OpenFile(r.Context(), t.Ref)
	if err != nil {
		f.cfg.Logger.Warn("serve file to the bot", bridge.LogPlatform, t.Platform, bridge.LogErr, err)
		status := http.StatusBadGateway
		if errors.Is(err, bridge.ErrNotFound) {
			status = http.StatusNotFound
		}
		http.Error(w, "the platform did not give the file", status)
		return
	}
	defer body.Close()
	if mt == "" {
		mt = t.MIMEType
	}
	if mt == "" {
		mt = "application/octet-stream"
	}
	// A person's file is served as a download that no browser renders in
	// the bridge's origin, whatever type the person claimed for it.
	h := w.Header()
	h.Set("Content-Type", mt)
	h.Set("Content-Disposition", attachment(t.Name))
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	limit := f.cfg.MaxBytes
	n, err := io.Copy(w, io.LimitReader(body, limit))
	if err != nil {
		f.cfg.Logger.Warn("serve file to the bot", bridge.LogPlatform, t.Platform, bridge.LogErr, fmt.Errorf("copy: %w", err))
	} else if n == limit {
		if k, _ := body.Read(make([]byte, 1)); k > 0 {
			f.cfg.Logger.Warn("file cut at the size limit", bridge.LogPlatform, t.Platform, "limit_bytes", limit)
		}
	}
}

// attachment returns a Content-Disposition that makes name a download: the
// name's last path element without control characters, quoted in ASCII,
// and in full in filename* (RFC 6266, RFC 8187) when it is not plain ASCII.
func attachment(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	if name == "" || name == "." || name == ".." {
		name = "file"
	}
	var ascii, ext strings.Builder
	plain := true
	for _, r := range name {
		if r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			plain = false
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	if plain {
		return `attachment; filename="` + name + `"`
	}
	for _, b := range []byte(name) {
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0 {
			ext.WriteByte(b)
		} else {
			fmt.Fprintf(&ext, "%%%02X", b)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + ext.String()
}
