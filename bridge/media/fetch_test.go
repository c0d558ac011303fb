package media_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/media"
)

func TestFetcherRefusesTheOperatorsNetworkByDefault(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer srv.Close()
	_, err := media.NewFetcher(media.FetcherConfig{}).Fetch(t.Context(), srv.URL+"/internal?token=abc", "")
	if !errors.Is(err, media.ErrPrivateAddress) {
		t.Fatalf("loopback download: %v, want ErrPrivateAddress", err)
	}
	if strings.Contains(err.Error(), "token=abc") {
		t.Errorf("error shows the query: %v", err)
	}
	// The check is on the dialled address: after DNS (localhost), and for
	// literal addresses in every spelling.
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, u := range []string{
		"http://10.0.0.1/x", "http://192.168.1.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://100.64.0.1/x",
		fmt.Sprintf("http://localhost:%d/x", port), fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/x", port),
		"http://192.0.0.192/x", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data", "http://[2002:7f00:1::1]/x", "http://[::7f00:1]/x",
		"http://198.18.0.1/x", "http://240.0.0.1/x", "http://[fe80::1%25eth0]/x",
	} {
		if _, err := media.NewFetcher(media.FetcherConfig{Timeout: 2 * time.Second}).Fetch(t.Context(), u, ""); !errors.Is(err, media.ErrPrivateAddress) {
			t.Errorf("%s: %v, want ErrPrivateAddress", u, err)
		}
	}
}

func TestFetcherFollowsItsLimits(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/cat", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write([]byte("\x89PNG fake"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2048)) })
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/named", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="report.pdf"`)
		w.Write([]byte("%PDF-1.4"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := media.NewFetcher(media.FetcherConfig{AllowPrivate: true, MaxBytes: 1024, Timeout: 500 * time.Millisecond})

	got, err := f.Fetch(t.Context(), srv.URL+"/cat", "")
	if err != nil || string(got.Data) != "\x89PNG fake" || got.MIMEType != "image/png" || got.Name != "cat.png" {
		t.Errorf("image: %+v, %v", got, err)
	}
	if got, err := f.Fetch(t.Context(), srv.URL+"/named", "download"); err != nil || got.Name != "report.pdf" {
		t.Errorf("named: %+v, %v", got, err)
	}
	for path, want := range map[string]string{"/big": "limit", "/gone": "404", "/slow": "deadline"} {
		if _, err := f.Fetch(t.Context(), srv.URL+path, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %q", path, err, want)
		}
	}
	for _, u := range []string{"file:///etc/passwd", "ftp://example.com/x", "gopher://x", "/relative"} {
		if _, err := f.Fetch(t.Context(), u, ""); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
			t.Errorf("%s: %v", u, err)
		}
	}
	if got, err := f.Fetch(t.Context(), "data:text/plain;base64,aGVsbG8=", "note"); err != nil || string(got.Data) != "hello" || got.Name != "note.txt" {
		t.Errorf("data URL: %+v, %v", got, err)
	}
}

func TestFetcherChecksRedirects(t *testing.T) {
	// A public-looking redirect to loopback is refused at the dial, as any
	// loopback address; a redirect to another scheme is refused outright.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	}))
	defer srv.Close()
	_, err := media.NewFetcher(media.FetcherConfig{AllowPrivate: true}).Fetch(t.Context(), srv.URL, "")
	if err == nil || !strings.Contains(err.Error(), "redirect to a file URL") {
		t.Errorf("redirect to file: %v", err)
	}
}
