package chattest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/golang-jwt/jwt/v5"
)

func TestCreateUser(t *testing.T) {
	e := newEnv(t, chattest.Options{})

	t.Run("returns the user and a key that authenticates it", func(t *testing.T) {
		var out struct {
			User userOut      `json:"user"`
			Key  chat.UserKey `json:"key"`
		}
		e.do("POST", "/users", "", map[string]any{"name": "Ada", "pictureUrl": "https://example.com/a.png", "profile": "likes tea"}).ok(t, &out)
		if !strings.HasPrefix(string(out.User.ID), "user_") {
			t.Errorf("generated id %q", out.User.ID)
		}
		if out.User.Name != "Ada" || out.User.PictureURL != "https://example.com/a.png" || out.User.Profile != "likes tea" {
			t.Errorf("user %+v", out.User)
		}
		checkTimestamp(t, "createdAt", out.User.CreatedAt)
		checkTimestamp(t, "updatedAt", out.User.UpdatedAt)
		tok, _, err := jwt.NewParser().ParseUnverified(string(out.Key), jwt.MapClaims{})
		if err != nil {
			t.Fatalf("key is not a JWT: %v", err)
		}
		if tok.Header["alg"] != "HS256" || tok.Claims.(jwt.MapClaims)["id"] != string(out.User.ID) {
			t.Errorf("key header %v claims %v", tok.Header, tok.Claims)
		}
		var me struct{ User userOut }
		e.do("GET", "/users/me", out.Key, nil).ok(t, &me)
		if me.User.ID != out.User.ID {
			t.Errorf("getUser with the key: %+v", me.User)
		}
	})

	t.Run("keeps a chosen id", func(t *testing.T) {
		id, _ := e.createUser(`team-a/alice\1_x`)
		if id != `team-a/alice\1_x` {
			t.Errorf("id %q", id)
		}
	})

	t.Run("refuses a taken id with 409", func(t *testing.T) {
		e.createUser("taken")
		e.do("POST", "/users", "", map[string]any{"id": "taken"}).apiErr(t, http.StatusConflict, "AlreadyExists", "User with id taken already exists")
	})

	t.Run("applies the fid rules", func(t *testing.T) {
		e.createUser(strings.Repeat("a", 70))
		e.do("POST", "/users", "", map[string]any{"id": strings.Repeat("a", 71)}).
			apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid length exceeds the maximum allowed length of 70")
		for _, bad := range []string{"a b", "a.b", "é", "a@b", ""} {
			e.do("POST", "/users", "", map[string]any{"id": bad}).
				apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid contains invalid characters")
		}
	})

	t.Run("limits profile to 1000 characters", func(t *testing.T) {
		e.do("POST", "/users", "", map[string]any{"profile": strings.Repeat("é", 1000)}).ok(t, nil)
		e.do("POST", "/users", "", map[string]any{"profile": strings.Repeat("x", 1001)}).
			msgErr(t, http.StatusBadRequest, "/profile must NOT have more than 1000 characters")
	})

	t.Run("refuses fields of the wrong type", func(t *testing.T) {
		e.do("POST", "/users", "", map[string]any{"name": 5}).msgErr(t, http.StatusBadRequest, "/name must be string")
		e.do("POST", "/users", "", map[string]any{"id": nil}).msgErr(t, http.StatusBadRequest, "/id must be string")
	})

	t.Run("accepts unknown top-level properties", func(t *testing.T) {
		e.do("POST", "/users", "", map[string]any{"nickname": "x"}).ok(t, nil)
	})
}

func TestCreateUserRefusedInManualMode(t *testing.T) {
	e := newEnv(t, chattest.Options{EncryptionKey: "secret"})
	r := e.do("POST", "/users", "", map[string]any{"id": "alice"})
	r.apiErr(t, http.StatusUnauthorized, "Unauthorized", "")
	if !strings.Contains(string(r.body), "shared key") {
		t.Errorf("message does not say createUser needs the shared key: %s", r.body)
	}
}

func TestGetOrCreateUser(t *testing.T) {
	const secret = "encryption-key"
	e := newEnv(t, chattest.Options{EncryptionKey: secret})
	key := signKey(t, secret, jwt.MapClaims{"id": "slack-U123", "iat": 1})

	var first struct{ User userOut }
	e.do("POST", "/users/get-or-create", key, map[string]any{"name": "Ada"}).ok(t, &first)
	t.Run("creates the user named by the key", func(t *testing.T) {
		if first.User.ID != "slack-U123" || first.User.Name != "Ada" {
			t.Errorf("user %+v", first.User)
		}
	})

	t.Run("returns the existing user, updating given fields only", func(t *testing.T) {
		var again struct{ User userOut }
		e.do("POST", "/users/get-or-create", key, map[string]any{"profile": "p"}).ok(t, &again)
		if again.User.ID != first.User.ID || again.User.CreatedAt != first.User.CreatedAt || again.User.Name != "Ada" || again.User.Profile != "p" {
			t.Errorf("second call %+v, first %+v", again.User, first.User)
		}
	})

	t.Run("checks the key's id with the fid rules", func(t *testing.T) {
		bad := signKey(t, secret, jwt.MapClaims{"id": "has space"})
		e.do("POST", "/users/get-or-create", bad, map[string]any{}).apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid contains invalid characters")
		long := signKey(t, secret, jwt.MapClaims{"id": strings.Repeat("x", 71)})
		e.do("POST", "/users/get-or-create", long, nil).apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid length exceeds the maximum allowed length of 70")
	})

	t.Run("needs a key", func(t *testing.T) {
		e.do("POST", "/users/get-or-create", "", map[string]any{}).msgErr(t, http.StatusBadRequest, "must have required property 'x-user-key'")
	})
}

func TestGetOrCreateUserInSharedMode(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	id, key := e.createUser("bob")
	var out struct{ User userOut }
	e.do("POST", "/users/get-or-create", key, nil).ok(t, &out)
	if out.User.ID != id {
		t.Errorf("user %+v, want %s", out.User, id)
	}
}

func TestUpdateUser(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	var created struct {
		User userOut
		Key  chat.UserKey
	}
	e.do("POST", "/users", "", map[string]any{"name": "A", "pictureUrl": "p"}).ok(t, &created)
	var out struct{ User userOut }
	e.do("PUT", "/users/me", created.Key, map[string]any{"name": "B"}).ok(t, &out)
	if out.User.Name != "B" || out.User.PictureURL != "p" {
		t.Errorf("updated %+v: name must change, pictureUrl stay", out.User)
	}
	var got struct{ User userOut }
	e.do("GET", "/users/me", created.Key, nil).ok(t, &got)
	if got.User != out.User {
		t.Errorf("getUser %+v after update %+v", got.User, out.User)
	}
}

func TestDeleteUser(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	id, key := e.createUser("gone")
	r := e.do("DELETE", "/users/me", key, map[string]any{})
	r.ok(t, nil)
	if string(r.body) != "{}" {
		t.Errorf("body %s, want {}", r.body)
	}
	e.do("GET", "/users/me", key, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "User "+string(id)+" not found")
}
