package slack

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

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// errPrivateAddress refuses a download from the bridge's own network.
var errPrivateAddress = errors.New("refusing to download from a private or loopback address (see slack.allow_private_urls)")

// guardedClient returns the client of the bot's files: base itself when
// private addresses are allowed, else a client whose connections may only
// reach public addresses (checked on the address dialled, after DNS and on
// every redirect).
func guardedClient(base *http.Client, allowPrivate bool) *http.Client {
	if allowPrivate {
		return base
	}
	dialer := &net.Dialer{
		Timeout: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return errPrivateAddress
			}
			return nil
		},
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConns:          10,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: base.CheckRedirect,
		Jar:           base.Jar,
	}
}

// errSignIn is Slack's answer to a file download without a valid token or
// the files:read scope: a redirect to its sign-in page.
var errSignIn = errors.New("slack: Slack answered with its sign-in page: add the files:read scope to the app and reinstall it")

// tokenClient returns the client of Slack's private file URLs: base, but
// stopping at a redirect to the sign-in page.
func tokenClient(base *http.Client) *http.Client {
	c := *base
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.Contains(req.URL.Path, "signin") || req.URL.Query().Has("redir") {
			return errSignIn
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	}
	return &c
}

// fetchMedia downloads one of the bot's files, within DownloadTimeout and
// MaxFileBytes, from an http(s) or data: URL. It returns the bytes and a
// file name with an extension.
func (a *Adapter) fetchMedia(ctx context.Context, m media) ([]byte, string, error) {
	if strings.HasPrefix(m.url, "data:") {
		data, mt, err := decodeDataURL(m.url, a.cfg.MaxFileBytes)
		if err != nil {
			return nil, "", err
		}
		return data, withExtension(m.name, mt), nil
	}
	u, err := url.Parse(m.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("download %q: not an http(s) URL", m.url)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("download: %w", err)
	}
	resp, err := a.download.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("download %s: %s", u.Redacted(), resp.Status)
	}
	data, err := readCapped(resp.Body, resp.ContentLength, a.cfg.MaxFileBytes)
	if err != nil {
		return nil, "", fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	if len(data) == 0 {
		return nil, "", fmt.Errorf("download %s: empty file", u.Redacted())
	}
	name := m.name
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" && path.Ext(name) == "" {
		name = path.Base(params["filename"])
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return data, withExtension(name, mt), nil
}

// readCapped reads a body of at most limit bytes.
func readCapped(r io.Reader, length, limit int64) ([]byte, error) {
	if length > limit {
		return nil, fmt.Errorf("%d bytes is more than the limit of %d (slack.max_file_mb)", length, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than the limit of %d bytes (slack.max_file_mb)", limit)
	}
	return data, nil
}

// withExtension gives name the extension of its MIME type when it has none,
// so that Slack shows the file as what it is.
func withExtension(name, mimeType string) string {
	if path.Ext(name) != "" || mimeType == "" {
		return name
	}
	if exts, _ := mime.ExtensionsByType(mimeType); len(exts) > 0 {
		return name + exts[0]
	}
	return name
}

// decodeDataURL decodes data:[<type>][;base64],<data>.
func decodeDataURL(u string, limit int64) ([]byte, string, error) {
	meta, payload, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok {
		return nil, "", errors.New("malformed data URL")
	}
	if int64(len(payload)) > limit*4/3+4 {
		return nil, "", fmt.Errorf("data URL larger than the limit of %d bytes", limit)
	}
	mt, _, _ := strings.Cut(meta, ";")
	var data []byte
	var err error
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
	return data, mt, nil
}

// OpenFile implements bridge.FileOpener: ref is the id of a file a person
// shared. It looks the file up (files.info) and downloads it from its
// private URL with the bot token, up to MaxFileBytes. It returns an error
// wrapping bridge.ErrNotFound when the file was deleted.
func (a *Adapter) OpenFile(ctx context.Context, ref string) (io.ReadCloser, string, error) {
	var f *slackapi.File
	err := a.call(ctx, "files.info", "", func(ctx context.Context) error {
		var err error
		f, _, _, err = a.api.GetFileInfoContext(ctx, ref, 1, 1)
		return err
	})
	switch code := errorCode(err); {
	case code == "file_not_found" || code == "file_deleted":
		return nil, "", fmt.Errorf("slack: file %s: %w", ref, bridge.ErrNotFound)
	case err != nil:
		return nil, "", err
	case f.Mode == "tombstone":
		return nil, "", fmt.Errorf("slack: file %s was deleted: %w", ref, bridge.ErrNotFound)
	case int64(f.Size) > a.cfg.MaxFileBytes:
		return nil, "", fmt.Errorf("slack: file %s: %d bytes is more than the limit of %d (slack.max_file_mb)", ref, f.Size, a.cfg.MaxFileBytes)
	}
	target := nonEmpty(f.URLPrivateDownload, f.URLPrivate)
	if !a.mayGetToken(target) {
		return nil, "", fmt.Errorf("slack: file %s: refusing to send the bot token to %q", ref, target)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, "", fmt.Errorf("slack: file %s: %w", ref, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.BotToken)
	resp, err := a.private.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("slack: download file %s: %w", ref, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		resp.Body.Close()
		return nil, "", fmt.Errorf("slack: file %s: %w", ref, bridge.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, "", fmt.Errorf("slack: download file %s: %s", ref, resp.Status)
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") && !strings.Contains(f.Mimetype, "html"):
		resp.Body.Close()
		return nil, "", errSignIn
	case resp.ContentLength > a.cfg.MaxFileBytes:
		resp.Body.Close()
		return nil, "", fmt.Errorf("slack: file %s: %d bytes is more than the limit", ref, resp.ContentLength)
	}
	return &cappedBody{r: io.LimitReader(resp.Body, a.cfg.MaxFileBytes+1), c: resp.Body, left: a.cfg.MaxFileBytes}, f.Mimetype, nil
}

// mayGetToken reports whether u may receive the bot token: an https URL on
// Slack's domains, or a URL on the host of the configured API.
func (a *Adapter) mayGetToken(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := strings.ToLower(pu.Hostname())
	if pu.Scheme == "https" {
		for _, d := range []string{"slack.com", "slack-gov.com", "slack-edge.com"} {
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
	}
	api, err := url.Parse(a.cfg.APIURL)
	return err == nil && api.Host != "" && pu.Scheme == api.Scheme && strings.EqualFold(pu.Host, api.Host)
}

// cappedBody fails a read past the size limit instead of cutting the file
// short silently.
type cappedBody struct {
	r    io.Reader
	c    io.Closer
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errors.New("slack: file larger than the limit (slack.max_file_mb)")
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.c.Close() }
