package bridge

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
)

// FileLinks makes signed, expiring links under the bridge's public URL for
// files people send, and serves them: the link names the platform and the
// adapter's reference of the file, and the handler streams the bytes from
// the adapter (FileOpener) without keeping a copy.
type FileLinks struct {
	// BaseURL is the bridge's public URL as the bot reaches it, such as
	// https://bridge.example.org; links are BaseURL/files/<token>/<name>.
	BaseURL string
	// Secret signs the links; at least 32 bytes.
	Secret []byte
	// TTL is how long a link works. Default 24 hours.
	TTL time.Duration
	// MaxBytes caps what a link serves. Default 100 MB.
	MaxBytes int64
	// Openers give the bytes of each platform's files.
	Openers map[Platform]FileOpener
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// FilesPath is the path under which FileLinks serves files.
const FilesPath = "/files/"

type fileToken struct {
	Platform Platform `json:"p"`
	Ref      string   `json:"r"`
	MIMEType string   `json:"m,omitempty"`
	Expires  int64    `json:"e"`
}

func (f *FileLinks) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// URL returns a link to the file that works for TTL.
func (f *FileLinks) URL(p Platform, file File) string {
	ttl := f.TTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	body, _ := json.Marshal(fileToken{Platform: p, Ref: file.Ref, MIMEType: file.MIMEType, Expires: f.now().Add(ttl).Unix()})
	token := base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(f.sign(body))
	name := file.Name
	if name == "" {
		name = "file"
	}
	return strings.TrimRight(f.BaseURL, "/") + FilesPath + token + "/" + url.PathEscape(name)
}

func (f *FileLinks) sign(body []byte) []byte {
	m := hmac.New(sha256.New, f.Secret)
	m.Write(body)
	return m.Sum(nil)
}

var (
	errBadLink     = errors.New("bad file link")
	errExpiredLink = errors.New("expired file link")
)

func (f *FileLinks) parse(token string) (fileToken, error) {
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
	if f.now().Unix() > t.Expires {
		return t, errExpiredLink
	}
	return t, nil
}

// ServeHTTP serves GET FilesPath<token>/<name>: 404 for a bad link, 410 for
// an expired one, 502 when the platform cannot give the file.
func (f *FileLinks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	opener := f.Openers[t.Platform]
	if opener == nil {
		http.NotFound(w, r)
		return
	}
	body, mt, err := opener.OpenFile(r.Context(), t.Ref)
	if err != nil {
		f.logger().Warn("serve file to the bot", LogPlatform, t.Platform, LogErr, err)
		status := http.StatusBadGateway
		if errors.Is(err, ErrNotFound) {
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
	limit := f.MaxBytes
	if limit <= 0 {
		limit = 100 << 20
	}
	n, err := io.Copy(w, io.LimitReader(body, limit))
	if err != nil {
		f.logger().Warn("serve file to the bot", LogPlatform, t.Platform, LogErr, fmt.Errorf("copy: %w", err))
	} else if n == limit {
		if k, _ := body.Read(make([]byte, 1)); k > 0 {
			f.logger().Warn("file cut at the size limit", LogPlatform, t.Platform, "limit_bytes", limit)
		}
	}
}

func (f *FileLinks) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}
