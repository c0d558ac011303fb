package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

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

// OpenFile implements bridge.FileOpener: ref is the id of a file a person
// shared. It looks the file up (files.info) and downloads it from its
// private URL with the bot token, up to MaxFileBytes. It returns an error
// wrapping bridge.ErrNotFound when the file was deleted.
func (a *Adapter) OpenFile(ctx context.Context, ref string) (io.ReadCloser, string, error) {
	ws, id, err := a.split(ref)
	if err != nil {
		return nil, "", fmt.Errorf("slack: file %s: %w: %w", ref, bridge.ErrNotFound, err)
	}
	var f *slackapi.File
	err = a.call(ctx, ws, "files.info", "", func(ctx context.Context) error {
		var err error
		f, _, _, err = ws.api.GetFileInfoContext(ctx, id, 1, 1)
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
	req.Header.Set("Authorization", "Bearer "+ws.token)
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
