package chat

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer makes user keys with a bot's encryption key (the Chat API's manual
// authentication mode, spec §2): the bridge chooses the user id and the
// server trusts any key signed with that secret. A Signer is safe for
// concurrent use; its fmt forms hide the secret.
type Signer struct {
	secret []byte
	// Now returns the time written into the "iat" claim; nil means time.Now.
	Now func() time.Time
}

// NewSigner returns a Signer for the encryption key configured on the bot's
// Chat integration. It does no I/O and fails only on an empty key.
func NewSigner(encryptionKey string) (*Signer, error) {
	if encryptionKey == "" {
		return nil, errors.New("chat: signer: empty encryption key")
	}
	return &Signer{secret: []byte(encryptionKey)}, nil
}

// Key returns the user key for id: an HS256 JWT with the claims "id" and
// "iat". It does no I/O; it fails when id breaks the id rules (ValidateID),
// because the server would refuse to create such a user.
func (s *Signer) Key(id UserID) (UserKey, error) {
	if err := ValidateID(string(id)); err != nil {
		return "", fmt.Errorf("chat: sign key: %w", err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	claims := jwt.MapClaims{"id": string(id), "iat": now().Unix()}
	key, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("chat: sign key: %w", err)
	}
	return UserKey(key), nil
}

// String hides the encryption key.
func (s Signer) String() string { return "chat.Signer{[redacted]}" }

// GoString hides the encryption key from %#v.
func (s Signer) GoString() string { return s.String() }
