package chattest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/golang-jwt/jwt/v5"
)

func TestHello(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	for _, path := range []string{"/hello/", "/hello", "//hello//"} {
		r := e.do("GET", path, "", nil)
		if r.status != http.StatusOK || string(r.body) != "Hello, Botpress User 🤖" {
			t.Errorf("GET %s: %d %q", path, r.status, r.body)
		}
	}
}

func TestSlashesDoNotMatter(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	for _, path := range []string{"/conversations/c1/", "//conversations//c1", "/conversations/c1///"} {
		e.do("GET", path, key, nil).ok(t, nil)
	}
}

func TestOptionsAnswers200(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	for _, path := range []string{"/messages", "/conversations/x/listen", "/no/such/route"} {
		if r := e.do("OPTIONS", path, "", nil); r.status != http.StatusOK {
			t.Errorf("OPTIONS %s: %d", path, r.status)
		}
	}
}

// TestUnknownRouteAndWrongMethod covers quirk 8: both answer 404.
func TestUnknownRouteAndWrongMethod(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	t.Run("unknown path", func(t *testing.T) {
		e.do("GET", "/nothing/here", key, nil).msgErr(t, http.StatusNotFound, "Route doesn't exist")
		e.do("GET", "/conversations/c/messages/extra", key, nil).msgErr(t, http.StatusNotFound, "Route doesn't exist")
	})
	t.Run("known path, wrong method", func(t *testing.T) {
		e.do("PATCH", "/users/me", key, nil).msgErr(t, http.StatusNotFound, "Method doesn't exist")
		e.do("POST", "/messages/m1", key, nil).msgErr(t, http.StatusNotFound, "Method doesn't exist")
		e.do("GET", "/users", key, nil).msgErr(t, http.StatusNotFound, "Method doesn't exist")
	})
	t.Run("another webhook id", func(t *testing.T) {
		other := &env{t: t, s: e.s, url: strings.TrimSuffix(e.url, "/local") + "/other", hc: e.hc}
		other.do("GET", "/hello", "", nil).msgErr(t, http.StatusNotFound, "Route doesn't exist")
	})
}

func TestInvalidJSONBody(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	e.do("POST", "/conversations", key, `{"id":`).msgErr(t, http.StatusBadRequest, "Invalid JSON body")
	e.do("POST", "/users", "", `not json`).msgErr(t, http.StatusBadRequest, "Invalid JSON body")
	e.do("DELETE", "/users/me", key, `{`).msgErr(t, http.StatusBadRequest, "Invalid JSON body")
	e.do("POST", "/conversations", key, `[1]`).msgErr(t, http.StatusBadRequest, "must be object")
}

func TestDeleteAcceptsJSONBody(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	e.do("DELETE", "/conversations/c1", key, `{}`).ok(t, nil)
}

func TestEverySuccessIs200WithJSON(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	// createUser, createConversation and createMessage are 201 in the spec but
	// 200 on the service; ok() checks status and content type.
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	e.sendText(key, "c1", "x")
	e.do("POST", "/events", key, map[string]any{"conversationId": "c1", "payload": map[string]any{}}).ok(t, nil)
}

func TestMissingUserKey(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	for _, rt := range [][2]string{{"GET", "/users/me"}, {"POST", "/conversations"}, {"GET", "/conversations/c/listen"}, {"POST", "/messages"}} {
		e.do(rt[0], rt[1], "", nil).msgErr(t, http.StatusBadRequest, "must have required property 'x-user-key'")
	}
}

func TestBadUserKey(t *testing.T) {
	const secret = "the-key"
	e := newEnv(t, chattest.Options{EncryptionKey: secret})
	good := signKey(t, secret, jwt.MapClaims{"id": "alice"})
	e.do("POST", "/users/get-or-create", good, nil).ok(t, nil)

	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims{"id": "alice"}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"id": "alice"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]chat.UserKey{
		"another secret":  signKey(t, "not-the-key", jwt.MapClaims{"id": "alice"}),
		"HS384":           chat.UserKey(hs384),
		"alg none":        chat.UserKey(none),
		"no id claim":     signKey(t, secret, jwt.MapClaims{"sub": "alice"}),
		"numeric id":      signKey(t, secret, jwt.MapClaims{"id": 42}),
		"expired":         signKey(t, secret, jwt.MapClaims{"id": "alice", "exp": time.Now().Add(-time.Hour).Unix()}),
		"not yet valid":   signKey(t, secret, jwt.MapClaims{"id": "alice", "nbf": time.Now().Add(time.Hour).Unix()}),
		"not a JWT":       "garbage",
		"truncated token": good[:len(good)-3],
	} {
		t.Run(name+" is refused with 401", func(t *testing.T) {
			e.do("GET", "/users/me", key, nil).apiErr(t, http.StatusUnauthorized, "Unauthorized", "Invalid user key")
		})
	}
	t.Run("an empty header is refused with 401", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/users/me", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header["X-User-Key"] = []string{""}
		res, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d", res.StatusCode)
		}
	})
	t.Run("claims other than id are ignored", func(t *testing.T) {
		k := signKey(t, secret, jwt.MapClaims{"id": "alice", "iat": 1, "aud": "x", "exp": time.Now().Add(time.Hour).Unix()})
		e.do("GET", "/users/me", k, nil).ok(t, nil)
	})
}

// TestSharedModeKeys checks that keys of createUser are signed with a secret
// of the emulator, that another emulator's keys fail, and that the jsonwebtoken
// header form works as well as the jose one.
func TestSharedModeKeys(t *testing.T) {
	e1 := newEnv(t, chattest.Options{})
	e2 := newEnv(t, chattest.Options{})
	_, k1 := e1.createUser("alice")
	e2.createUser("alice")
	e2.do("GET", "/users/me", k1, nil).apiErr(t, http.StatusUnauthorized, "Unauthorized", "Invalid user key")
	signed, err := e1.s.Sign("alice")
	if err != nil {
		t.Fatal(err)
	}
	e1.do("GET", "/users/me", signed, nil).ok(t, nil)
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	r := e.do("GET", "/openapi.json", "", nil)
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	r.ok(t, &doc)
	if len(doc.Paths) == 0 {
		t.Errorf("document without paths: %.100s", r.body)
	}
}

func TestErrorIDFormat(t *testing.T) {
	e := newEnv(t, chattest.Options{Now: newClock(time.Date(2026, 11, 22, 18, 42, 20, 0, time.UTC)).Now})
	_, key := e.createUser("alice")
	r := e.do("GET", "/conversations/nope", key, nil)
	r.apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	var b struct{ ID string }
	_ = json.Unmarshal(r.body, &b)
	if !strings.HasPrefix(b.ID, "err_20261122184220x") {
		t.Errorf("error id %q does not carry the UTC time of Now", b.ID)
	}
}
