package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image sizes for m.image info
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// upload fetches the bot's file and uploads it to the media repository,
// encrypted in encrypted rooms, and returns the event that shows it. A file
// that cannot be fetched, or that the homeserver refuses, is shown as its
// link instead; an error means the homeserver failed and a retry may work.
func (a *Adapter) upload(ctx context.Context, room id.RoomID, encrypted bool, m *mediaPart) (*event.MessageEventContent, error) {
	f, err := a.fetcher.Fetch(ctx, m.url, "")
	if err != nil {
		a.logLimited(slog.LevelWarn, "fetch "+string(room), "cannot fetch the bot's file; posting its link instead",
			bridge.LogRoom, room, bridge.LogErr, err)
		return m.fallback, nil
	}
	data, mimeType, name := f.Data, f.MIMEType, f.Name
	c := &event.MessageEventContent{
		MsgType:  m.msgType,
		Body:     name,
		Info:     &event.FileInfo{MimeType: mimeType, Size: len(data)},
		Mentions: &event.Mentions{},
	}
	if m.title != "" && m.title != name {
		c.Body, c.FileName = m.title, name
	}
	if m.msgType == event.MsgImage {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			c.Info.Width, c.Info.Height = cfg.Width, cfg.Height
		}
	}
	req := mautrix.ReqUploadMedia{ContentBytes: data, ContentType: mimeType, FileName: name}
	var file *attachment.EncryptedFile
	if encrypted {
		// data is a buffer of the adapter's own, no longer needed in the clear.
		file = attachment.NewEncryptedFile()
		file.EncryptInPlace(data)
		req = mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "application/octet-stream"}
	}
	var resp *mautrix.RespMediaUpload
	err = a.rateLimited(ctx, room, func() (err error) {
		resp, err = a.cli.UploadMedia(ctx, req)
		return err
	})
	switch {
	case err != nil && !transient(err):
		a.logLimited(slog.LevelWarn, "upload "+room.String(), "the homeserver refuses the bot's file; posting its link instead",
			bridge.LogRoom, room, bridge.LogErr, err)
		return m.fallback, nil
	case err != nil:
		return nil, fmt.Errorf("matrix: upload %s: %w", name, err)
	}
	if file != nil {
		c.File = &event.EncryptedFileInfo{EncryptedFile: *file, URL: resp.ContentURI.CUString()}
	} else {
		c.URL = resp.ContentURI.CUString()
	}
	return c, nil
}

// OpenFile implements bridge.FileOpener: it downloads a person's file
// through the homeserver's authenticated media API and, in encrypted rooms,
// decrypts and verifies it. Files larger than MaxFileBytes fail; a file the
// homeserver no longer has wraps bridge.ErrNotFound. It works in a replica
// that does not run the adapter (another runs the Matrix sync loop), with
// the access token of the configuration or the one the running replica
// keeps in the store; before any replica has logged in, it waits for Run
// to.
func (a *Adapter) OpenFile(ctx context.Context, ref string) (io.ReadCloser, string, error) {
	cli, err := a.downloader(ctx)
	if err != nil {
		return nil, "", err
	}
	mxc := id.ContentURIString(ref)
	var file *attachment.EncryptedFile
	if strings.HasPrefix(ref, "{") {
		var info event.EncryptedFileInfo
		if err := json.Unmarshal([]byte(ref), &info); err != nil {
			return nil, "", fmt.Errorf("matrix: open file: bad reference: %w", err)
		}
		mxc, file = info.URL, &info.EncryptedFile
	}
	uri, err := mxc.Parse()
	if err != nil {
		return nil, "", fmt.Errorf("matrix: open file %q: %w", mxc, err)
	}
	resp, err := cli.Download(ctx, uri)
	var he mautrix.HTTPError
	switch {
	case errors.Is(err, mautrix.MNotFound), errors.As(err, &he) && he.IsStatus(http.StatusNotFound):
		return nil, "", fmt.Errorf("matrix: open file %s: %w: %w", mxc, bridge.ErrNotFound, err)
	case err != nil:
		return nil, "", fmt.Errorf("matrix: open file %s: %w", mxc, err)
	}
	max := a.opts.MaxFileBytes
	if resp.ContentLength > max {
		resp.Body.Close()
		return nil, "", fmt.Errorf("matrix: open file %s: %d bytes, more than matrix.max_file_mb (%d)", mxc, resp.ContentLength, max)
	}
	if file == nil {
		return &capped{r: resp.Body, left: max, max: max}, resp.Header.Get("Content-Type"), nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("matrix: open file %s: %w", mxc, err)
	case int64(len(data)) > max:
		return nil, "", fmt.Errorf("matrix: open file %s: more than matrix.max_file_mb (%d)", mxc, max)
	}
	if err := file.DecryptInPlace(data); err != nil {
		return nil, "", fmt.Errorf("matrix: open file %s: decrypt: %w", mxc, err)
	}
	return io.NopCloser(bytes.NewReader(data)), "", nil
}

// capped fails a read past max bytes, so that a cut file is not mistaken
// for a whole one.
type capped struct {
	r         io.ReadCloser
	left, max int64
}

func (c *capped) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		n, c.left = int(c.left), 0
		return n, fmt.Errorf("matrix: the file has more than matrix.max_file_mb (%d)", c.max)
	}
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.r.Close() }

// downloader returns the client to download with: the adapter's once Run
// has logged in. Until then (in a replica standing by while another runs
// the sync loop) the standby client, with the configured access token, or
// the one the running replica keeps in the store, read each time since a
// new login there replaces it; with neither, it waits for Run.
func (a *Adapter) downloader(ctx context.Context) (*mautrix.Client, error) {
	select {
	case <-a.connected:
		return a.cli, nil
	default:
	}
	token := a.opts.AccessToken
	if token == "" {
		kept, err := a.opts.Store.Cursor(ctx, cursorName(a.opts.UserID, cursorToken))
		if err != nil {
			return nil, fmt.Errorf("matrix: read the kept access token: %w", err)
		}
		if kept == "" {
			return a.cli, a.waitConnected(ctx)
		}
		token = kept
	}
	a.standbyToken.Store(&token)
	return a.standby, nil
}
