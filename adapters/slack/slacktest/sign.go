package slacktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Sign returns the X-Slack-Signature of a request Slack sends at ts with
// body: "v0=" + hex(HMAC-SHA256(secret, "v0:" + unix seconds + ":" + body)).
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = fmt.Fprintf(mac, "v0:%d:", ts.Unix())
	_, _ = mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// NewSignedRequest returns a POST of body to target signed as Slack signs it at
// ts, with X-Slack-Request-Timestamp and X-Slack-Signature.
func NewSignedRequest(ctx context.Context, target, secret string, ts time.Time, contentType string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("slacktest: signed request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Sign(secret, ts, body))
	return req, nil
}

// Delivery adjusts a request of PostEvent or PostInteraction.
type Delivery struct {
	// RetryNum, when positive, marks a redelivery: X-Slack-Retry-Num and
	// X-Slack-Retry-Reason (such as "http_timeout" or "http_error").
	RetryNum    int
	RetryReason string
	// Time is the signing time; zero means the fake's clock.
	Time time.Time
	// Secret replaces Options.SigningSecret when set (to send a bad
	// signature).
	Secret string
}

// Response is an app's answer to PostEvent or PostInteraction, read whole.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// PostEvent posts payload (an EventCallback, URLVerification(...) or any
// JSON) to an Events API request URL (target) as Slack does: a JSON body signed with
// Options.SigningSecret.
func (s *Server) PostEvent(ctx context.Context, target string, payload any, d Delivery) (*Response, error) {
	body, err := marshalPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("slacktest: post event: %w", err)
	}
	return s.deliver(ctx, target, "application/json", body, d)
}

// PostInteraction posts payload (such as BlockActions(...)) to an
// interactivity request URL (target) as Slack does: a form body
// payload=<url-encoded JSON> signed with Options.SigningSecret.
func (s *Server) PostInteraction(ctx context.Context, target string, payload any, d Delivery) (*Response, error) {
	js, err := marshalPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("slacktest: post interaction: %w", err)
	}
	body := []byte(url.Values{"payload": {string(js)}}.Encode())
	return s.deliver(ctx, target, "application/x-www-form-urlencoded", body, d)
}

func (s *Server) deliver(ctx context.Context, target, contentType string, body []byte, d Delivery) (*Response, error) {
	ts, secret := d.Time, d.Secret
	if ts.IsZero() {
		ts = s.now()
	}
	if secret == "" {
		secret = s.opts.SigningSecret
	}
	req, err := NewSignedRequest(ctx, target, secret, ts, contentType, body)
	if err != nil {
		return nil, err
	}
	if d.RetryNum > 0 {
		req.Header.Set("X-Slack-Retry-Num", strconv.Itoa(d.RetryNum))
		req.Header.Set("X-Slack-Retry-Reason", d.RetryReason)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("slacktest: post: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("slacktest: post: read answer: %w", err)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}, nil
}
