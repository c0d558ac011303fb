package media

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// Fetcher downloads the files a bot links to (images, audio, video, files)
// for adapters that upload them to their platform. It takes only http(s) and
// data: URLs, bounds each download in time and size, and by default refuses
// every address that is not public (PublicAddr), checked on the address
// actually dialled (after DNS, and again on every redirect and
// reconnection, so a name that changes its answer gains nothing): a bot's
// reply must not make the bridge reach into the operator's network.
// It is safe for concurrent use.
type Fetcher struct {
	maxBytes int64
	timeout  time.Duration
	client   *http.Client
}

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// MaxBytes caps a download. Default 20 MB.
	MaxBytes int64
	// Timeout bounds a download. Default 30 seconds.
	Timeout time.Duration
	// AllowPrivate lets downloads reach private and loopback addresses,
	// for bots that serve their files on the operator's own network.
	AllowPrivate bool
	// Transport, with AllowPrivate, makes the requests instead of the
	// Fetcher's own transport (a proxy, a test's resolver). It is ignored
	// without AllowPrivate, where only the Fetcher's guarded dialer may run.
	Transport http.RoundTripper
}

// Fetched is a downloaded file.
type Fetched struct {
	Data []byte
	// Name is the name the caller gave, or the one the server sent, with an
	// extension matching MIMEType when it had none.
	Name     string
	MIMEType string
}

// ErrPrivateAddress is returned (wrapped) for a download that would reach a
// non-public address (see PublicAddr).
var ErrPrivateAddress = errors.New("refusing to download from a non-public address (private, loopback, link-local or special-purpose)")

// NewFetcher returns a Fetcher with its own HTTP transport.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 20 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !PublicAddr(ap.Addr()) {
				return ErrPrivateAddress
			}
			return nil
		}
	}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	var rt http.RoundTripper = transport
	if cfg.AllowPrivate {
		// Proxies are honoured only when private addresses are allowed: a
		// proxy would dial on the bridge's behalf, past the check above.
		transport.Proxy = http.ProxyFromEnvironment
		if cfg.Transport != nil {
			rt = cfg.Transport
		}
	}
	return &Fetcher{maxBytes: cfg.MaxBytes, timeout: cfg.Timeout, client: &http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}}
}

// MaxBytes returns the size limit of a download.
func (f *Fetcher) MaxBytes() int64 { return f.maxBytes }

// Fetch downloads rawURL (http, https or data:). name is the file's name as
// the bot gave it, if any. It blocks for the download and returns an error
// that names the URL without its query (which may hold credentials) for a
// refused address, a status other than 200, a body over the limit, an empty
// body or a timeout.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, name string) (Fetched, error) {
	if strings.HasPrefix(rawURL, "data:") {
		data, mt, err := decodeDataURL(rawURL, f.maxBytes)
		if err != nil {
			return Fetched{}, err
		}
		return Fetched{Data: data, Name: withExtension(name, mt), MIMEType: mt}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Fetched{}, fmt.Errorf("download: %q is not an http(s) URL", shorten(rawURL))
	}
	shown := u.Scheme + "://" + u.Host + u.Path
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Fetched{}, fmt.Errorf("download %s: %w", shown, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the full URL
		}
		return Fetched{}, fmt.Errorf("download %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Fetched{}, fmt.Errorf("download %s: %s", shown, resp.Status)
	}
	if resp.ContentLength > f.maxBytes {
		return Fetched{}, fmt.Errorf("download %s: %d bytes is more than the limit of %d", shown, resp.ContentLength, f.maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return Fetched{}, fmt.Errorf("download %s: %w", shown, err)
	}
	if int64(len(data)) > f.maxBytes {
		return Fetched{}, fmt.Errorf("download %s: larger than the limit of %d bytes", shown, f.maxBytes)
	}
	if len(data) == 0 {
		return Fetched{}, fmt.Errorf("download %s: empty file", shown)
	}
	if name == "" {
		name = path.Base(u.Path)
	}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" && path.Ext(name) == "" {
		name = path.Base(params["filename"])
	}
	if name == "" || name == "/" || name == "." {
		name = "file"
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/octet-stream" {
		if byExt := mime.TypeByExtension(path.Ext(name)); byExt != "" {
			mt, _, _ = mime.ParseMediaType(byExt)
		}
	}
	if mt == "" {
		mt = http.DetectContentType(data)
		mt, _, _ = mime.ParseMediaType(mt)
	}
	return Fetched{Data: data, Name: withExtension(name, mt), MIMEType: mt}, nil
}

// decodeDataURL decodes a data: URL of at most limit bytes.
func decodeDataURL(u string, limit int64) ([]byte, string, error) {
	meta, payload, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok {
		return nil, "", errors.New("malformed data URL")
	}
	if int64(len(payload)) > limit*4/3+4 {
		return nil, "", fmt.Errorf("data URL larger than the limit of %d bytes", limit)
	}
	mt, _, _ := strings.Cut(meta, ";")
	var (
		data []byte
		err  error
	)
	if strings.HasSuffix(meta, ";base64") {
		data, err = base64.StdEncoding.DecodeString(payload)
		if err != nil {
			data, err = base64.RawStdEncoding.DecodeString(payload)
		}
	} else {
		var s string
		s, err = url.PathUnescape(payload)
		data = []byte(s)
	}
	if err != nil {
		return nil, "", fmt.Errorf("malformed data URL: %w", err)
	}
	if len(data) == 0 {
		return nil, "", errors.New("empty data URL")
	}
	if int64(len(data)) > limit {
		return nil, "", fmt.Errorf("data URL larger than the limit of %d bytes", limit)
	}
	if mt == "" {
		mt = "text/plain"
	}
	return data, mt, nil
}

// withExtension gives name the extension of its MIME type when it has none,
// so that platforms show the file as what it is.
func withExtension(name, mimeType string) string {
	if name == "" {
		name = "file"
	}
	if path.Ext(name) != "" || mimeType == "" {
		return name
	}
	if ext, ok := preferredExt[mimeType]; ok {
		return name + ext
	}
	if exts, _ := mime.ExtensionsByType(mimeType); len(exts) > 0 {
		return name + exts[0]
	}
	return name
}

// preferredExt is the usual extension of types for which the mime package
// lists a rarer one first.
var preferredExt = map[string]string{
	"text/plain": ".txt", "image/jpeg": ".jpg", "audio/mpeg": ".mp3", "video/mp4": ".mp4",
	"audio/mp4": ".m4a", "video/quicktime": ".mov", "application/octet-stream": ".bin",
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
