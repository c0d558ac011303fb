package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

// Links makes signed, expiring links under the bridge's public URL for
// files people send, and serves them: the link names the platform and the
// adapter's reference of the file, and the handler streams the bytes from
// the adapter (bridge.FileOpener) without keeping a copy. It is safe for
// concurrent use.
type Links struct {
	cfg LinksConfig
}

// LinksConfig configures Links.
type LinksConfig struct {
	// BaseURL is the bridge's public URL as the bot reaches it, such as
	// https://bridge.example.org; links are BaseURL/files/<token>/<name>.
	// Required.
	BaseURL string
	// Secret signs the links; at least 32 bytes. Required.
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

var _ bridge.FileLinker = (*Links)(nil)

// FilesPath is the path under which Links serves files.
const FilesPath = "/files/"

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
	return &Links{cfg: cfg}, nil
}

type fileToken struct {
	Platform bridge.Platform `json:"p"`
	Ref      string          `json:"r"`
	MIMEType string          `json:"m,omitempty"`
	Expires  int64           `json:"e"`
}

// URL returns a link to the file that works for TTL. It does no I/O.
func (f *Links) URL(p bridge.Platform, file bridge.File) string {
	body, _ := json.Marshal(fileToken{Platform: p, Ref: file.Ref, MIMEType: file.MIMEType, Expires: f.cfg.Now().Add(f.cfg.TTL).Unix()})
	token := base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(f.sign(body))
	name := file.Name
	if name == "" {
		name = "file"
	}
	return strings.TrimRight(f.cfg.BaseURL, "/") + FilesPath + token + "/" + url.PathEscape(name)
}

func (f *Links) sign(body []byte) []byte {
	m := hmac.New(sha256.New, f.cfg.Secret)
	m.Write(body)
	return m.Sum(nil)
}

var (
	errBadLink     = errors.New("bad file link")
	errExpiredLink = errors.New("expired file link")
)

func (f *Links) parse(token string) (fileToken, error) {
	var t fileToken
	b64, sig64, ok := strings.Cut(token, ".")
	if !ok {
		return t, errBadLink
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, f.sign(body)) {
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

// ServeHTTP serves GET FilesPath<token>/<name>: 404 for a bad link, 410 for
// an expired one, 502 when the platform cannot give the file.
func (f *Links) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, FilesPath)
	token, name, _ := strings.Cut(rest, "/")
	if !ok || token == "" {
		http.NotFound(w, r)
		return
	}
	t, err := f.parse(token)
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
	w.Header().Set("Content-Type", mt)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if name != "" {
		if n, err := url.PathUnescape(name); err == nil {
			w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": n}))
		}
	}
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
