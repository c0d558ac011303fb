package chat_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/botbridge/botbridge/chat"
)

func TestSignerKey(t *testing.T) {
	const secret = "s3cret-encryption-key"
	issued := time.Date(2026, 11, 22, 18, 42, 20, 0, time.UTC)
	s, err := chat.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	s.Now = func() time.Time { return issued }

	tests := []struct {
		name    string
		id      chat.UserID
		wantErr bool
	}{
		{name: "simple id is signed", id: "slack-T01-U02"},
		{name: "slashes and backslashes are signed", id: `team/user\x_1`},
		{name: "70 characters are signed", id: chat.UserID(strings.Repeat("a", 70))},
		{name: "empty id is refused", id: "", wantErr: true},
		{name: "71 characters are refused", id: chat.UserID(strings.Repeat("a", 71)), wantErr: true},
		{name: "colon is refused", id: "@alice:example.org", wantErr: true},
		{name: "space is refused", id: "a b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := s.Key(tt.id)
			if tt.wantErr {
				if !errors.Is(err, chat.ErrInvalidID) {
					t.Fatalf("Key(%q) error = %v, want ErrInvalidID", tt.id, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Key(%q): %v", tt.id, err)
			}
			var claims jwt.MapClaims
			tok, err := jwt.ParseWithClaims(string(key), &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuedAt())
			if err != nil {
				t.Fatalf("verify key: %v", err)
			}
			if tok.Header["alg"] != "HS256" {
				t.Errorf("alg = %v, want HS256", tok.Header["alg"])
			}
			if claims["id"] != string(tt.id) {
				t.Errorf("id claim = %v, want %q", claims["id"], tt.id)
			}
			if iat, err := claims.GetIssuedAt(); err != nil || !iat.Equal(issued) {
				t.Errorf("iat = %v (%v), want %v", iat, err, issued)
			}
			if len(claims) != 2 {
				t.Errorf("claims = %v, want only id and iat", claims)
			}
		})
	}

	t.Run("other secret fails verification", func(t *testing.T) {
		key, err := s.Key("u1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = jwt.Parse(string(key), func(*jwt.Token) (any, error) { return []byte("other"), nil }, jwt.WithValidMethods([]string{"HS256"}))
		if !errors.Is(err, jwt.ErrSignatureInvalid) {
			t.Fatalf("verify with another secret: %v, want ErrSignatureInvalid", err)
		}
	})
}

func TestNewSigner(t *testing.T) {
	t.Run("empty key is refused", func(t *testing.T) {
		if _, err := chat.NewSigner(""); err == nil {
			t.Fatal("NewSigner(\"\") succeeded")
		}
	})
	t.Run("printing hides the secret", func(t *testing.T) {
		s, err := chat.NewSigner("top-secret-value")
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v", *s, s, s)} {
			if strings.Contains(out, "top-secret-value") || strings.Contains(out, "116 111 112") {
				t.Errorf("printed signer reveals its key: %s", out)
			}
		}
	})
	t.Run("printing a key hides it", func(t *testing.T) {
		if out := fmt.Sprint(testKey); strings.Contains(out, string(testKey)) {
			t.Errorf("fmt.Sprint(key) = %q", out)
		}
	})
}
