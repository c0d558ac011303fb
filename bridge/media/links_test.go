package media_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/media"
)

// files is a FileOpener over a map of refs to contents.
type files map[string]string

func (fs files) OpenFile(_ context.Context, ref string) (io.ReadCloser, string, error) {
	data, ok := fs[ref]
	if !ok {
		return nil, "", fmt.Errorf("open %q: %w", ref, bridge.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(data)), "", nil
}

// matrixRef is the shape of a Matrix attachment's reference: the mxc URL
// and the key that decrypts the file.
const matrixRef = `{"url":"mxc://example.org/AbCdEfGhIjKl","key":{"k":"K3yM4t3r14lK3yM4t3r14lK3yM4t3r14lK3yM4t3r1","alg":"A256CTR"},"iv":"IvIvIvIvIvIvIvIv0000","hashes":{"sha256":"H4shH4shH4sh"}}`

type linksRig struct {
	links *media.Links
	now   time.Time
}

func newLinks(t *testing.T, secret string) *linksRig {
	t.Helper()
	r := &linksRig{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	links, err := media.NewLinks(media.LinksConfig{
		BaseURL: "https://bridge.example.org/",
		Secret:  []byte(secret),
		TTL:     time.Hour,
		Openers: map[bridge.Platform]bridge.FileOpener{"matrix": files{matrixRef: "secret picture"}},
		Now:     func() time.Time { return r.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.links = links
	return r
}

// get serves rawURL's path and returns the response.
func (r *linksRig) get(method, rawURL string) *http.Response {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	w := httptest.NewRecorder()
	r.links.ServeHTTP(w, httptest.NewRequest(method, u.EscapedPath(), nil))
	return w.Result()
}

var secret = strings.Repeat("s", 32)

// token returns the token part of a link: FilesPath<token>/<name>.
func token(t *testing.T, link string) (prefix, tok, name string) {
	t.Helper()
	i := strings.Index(link, media.FilesPath)
	if i < 0 {
		t.Fatalf("link %q has no %s", link, media.FilesPath)
	}
	prefix = link[:i+len(media.FilesPath)]
	tok, name, _ = strings.Cut(link[i+len(media.FilesPath):], "/")
	return prefix, tok, name
}

func TestLinksServeTheFile(t *testing.T) {
	r := newLinks(t, secret)
	link := r.links.URL("matrix", bridge.File{Name: "cat.png", MIMEType: "image/png", Ref: matrixRef})
	if !strings.HasPrefix(link, "https://bridge.example.org/files/") || !strings.HasSuffix(link, "/cat.png") {
		t.Errorf("link = %q", link)
	}
	resp := r.get(http.MethodGet, link)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "secret picture" || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("GET: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}

	other := newLinks(t, secret) // another replica with the same secret
	if resp := other.get(http.MethodGet, link); resp.StatusCode != http.StatusOK {
		t.Errorf("another replica answered %s", resp.Status)
	}
	if resp := newLinks(t, strings.Repeat("x", 32)).get(http.MethodGet, link); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a bridge with another secret answered %s", resp.Status)
	}
}

func TestLinksRevealNothingOfTheReference(t *testing.T) {
	r := newLinks(t, secret)
	secrets := []string{"mxc://", "example.org", "AbCdEfGhIjKl", "K3yM4t3r14l", "IvIvIvIv", "H4shH4sh", "A256CTR", "matrix", "image/png", "cat.png"}
	for range 3 {
		_, tok, _ := token(t, r.links.URL("matrix", bridge.File{Name: "cat.png", MIMEType: "image/png", Ref: matrixRef}))
		var found []string
		for _, s := range secrets {
			for _, plain := range decodings(tok) {
				if bytes.Contains(plain, []byte(s)) {
					found = append(found, s)
					break
				}
			}
		}
		if found != nil {
			t.Fatalf("a token reveals %q", found)
		}
	}
}

// decodings returns what one could read from tok: the token itself and
// every base64 decoding of its dot-separated parts at every alignment.
func decodings(tok string) [][]byte {
	out := [][]byte{[]byte(tok)}
	for _, part := range append(strings.Split(tok, "."), tok) {
		for off := range 4 {
			if off >= len(part) {
				break
			}
			s := part[off:]
			s = s[:len(s)/4*4]
			for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.StdEncoding} {
				if b, err := enc.DecodeString(s); err == nil {
					out = append(out, b)
				}
			}
			std := strings.NewReplacer("-", "+", "_", "/").Replace(s)
			if b, err := base64.StdEncoding.DecodeString(std); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

func TestLinksRefuseATamperedToken(t *testing.T) {
	r := newLinks(t, secret)
	prefix, tok, name := token(t, r.links.URL("matrix", bridge.File{Name: "cat.png", Ref: matrixRef}))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(tok) {
		for _, c := range []byte(alphabet) {
			b := []byte(tok)
			if b[i] == c {
				continue
			}
			b[i] = c
			if resp := r.get(http.MethodGet, prefix+string(b)+"/"+name); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("token with byte %d changed to %q: %s, want 404", i, c, resp.Status)
			}
		}
	}
	for _, bad := range []string{tok[:len(tok)-1], tok + "A", tok[1:], "", "x.y"} {
		if resp := r.get(http.MethodGet, prefix+bad+"/"+name); resp.StatusCode != http.StatusNotFound {
			t.Errorf("token %q: %s, want 404", bad, resp.Status)
		}
	}
}

func TestLinksExpire(t *testing.T) {
	r := newLinks(t, secret)
	link := r.links.URL("matrix", bridge.File{Name: "cat.png", Ref: matrixRef})
	r.now = r.now.Add(time.Hour)
	if resp := r.get(http.MethodGet, link); resp.StatusCode != http.StatusOK {
		t.Errorf("at the end of its TTL: %s, want 200", resp.Status)
	}
	r.now = r.now.Add(time.Second)
	if resp := r.get(http.MethodGet, link); resp.StatusCode != http.StatusGone {
		t.Errorf("past its TTL: %s, want 410", resp.Status)
	}
}

func TestLinksServeTheSealedNameAsAnAttachment(t *testing.T) {
	r := newLinks(t, secret)
	for name, want := range map[string]string{
		"cat.png": "cat.png", "Übersicht 2025.pdf": "Übersicht 2025.pdf", `a"b%c.txt`: `a"b%c.txt`, "日本語.txt": "日本語.txt",
		"dir/../evil.html": "evil.html", `C:\evil.exe`: "evil.exe", "..": "file", "": "file",
	} {
		link := r.links.URL("matrix", bridge.File{Name: name, MIMEType: "image/png", Ref: matrixRef})
		prefix, tok, _ := token(t, link)
		for how, path := range map[string]string{"as made": link, "renamed": prefix + tok + "/evil.html", "without a name": prefix + tok} {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				resp := r.get(method, path)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s %q link %s: %s", method, name, how, resp.Status)
				}
				h := resp.Header
				disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
				if err != nil || disp != "attachment" || params["filename"] != want {
					t.Errorf("%s %q link %s: Content-Disposition %q (%v), want an attachment named %q", method, name, how, h.Get("Content-Disposition"), err, want)
				}
				if raw := h.Get("Content-Disposition"); strings.IndexFunc(raw, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
					t.Errorf("%s %q link %s: Content-Disposition %q is not plain ASCII", method, name, how, raw)
				}
				if got := h.Get("Content-Security-Policy"); got != "sandbox" {
					t.Errorf("%s %q link %s: Content-Security-Policy %q, want sandbox", method, name, how, got)
				}
				if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("%s %q link %s: X-Content-Type-Options %q, want nosniff", method, name, how, got)
				}
			}
		}
	}
}

func TestNewLinksNamesTheBadField(t *testing.T) {
	for field, cfg := range map[string]media.LinksConfig{
		"BaseURL": {Secret: []byte(secret)},
		"Secret":  {BaseURL: "https://b.example", Secret: []byte("short")},
	} {
		if _, err := media.NewLinks(cfg); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("NewLinks without a good %s: %v", field, err)
		}
	}
}
