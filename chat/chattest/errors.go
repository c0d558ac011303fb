package chattest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answer. With an empty typ it is a request validation
// failure, sent as {"message": ...} the way the server's ajv layer does;
// otherwise it is an API error with the full {"id","code","type","message"}
// body.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.msg) }

func errValidation(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "", fmt.Sprintf(format, args...)}
}

func errInvalidPayload(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidPayload", msg}
}

func errUnauthorized(msg string) *apiError {
	return &apiError{http.StatusUnauthorized, "Unauthorized", msg}
}

func errForbidden(msg string) *apiError { return &apiError{http.StatusForbidden, "Forbidden", msg} }

func errNotFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, "ResourceNotFound", fmt.Sprintf(format, args...)}
}

func errAlreadyExists(format string, args ...any) *apiError {
	return &apiError{http.StatusConflict, "AlreadyExists", fmt.Sprintf(format, args...)}
}

func errTooLarge(format string, args ...any) *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf(format, args...)}
}

func errInvalidQuery(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidQuery", msg}
}

// Messages the service uses.
const (
	msgNotOwner          = "You are not the owner of this conversation"
	msgNotParticipant    = "You are not a participant in this conversation"
	msgNotMsgParticipant = "You are not a participant in this message's conversation"
	msgNotSender         = "You are not the sender of this message"
	msgInvalidKey        = "Invalid user key"
	msgRemoveOwner       = "You cannot remove yourself from the conversation because you are its owner"
	msgSharedKeyOnly     = "createUser only works with the shared key: this bot uses an encryption key, so sign a user key with it and call getOrCreateUser"
	msgRouteNotFound     = "Route doesn't exist"
	msgMethodNotFound    = "Method doesn't exist"
	msgInvalidJSON       = "Invalid JSON body"
	msgMissingUserKey    = "must have required property 'x-user-key'"
)

// errorType names the API error type sent for an injected failure status.
func errorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "InvalidPayload"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusPaymentRequired:
		return "PaymentRequired"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "ResourceNotFound"
	case http.StatusMethodNotAllowed:
		return "MethodNotFound"
	case http.StatusConflict:
		return "AlreadyExists"
	case http.StatusGone:
		return "ResourceGone"
	case http.StatusRequestEntityTooLarge:
		return "PayloadTooLarge"
	case http.StatusUnsupportedMediaType:
		return "UnsupportedMediaType"
	case http.StatusTooManyRequests:
		return "RateLimited"
	case http.StatusInternalServerError:
		return "Internal"
	case http.StatusGatewayTimeout:
		return "OperationTimeout"
	}
	return "Unknown"
}

// errorID returns an id in the Botpress format: err_, UTC YYYYMMDDHHMMSS, x,
// and 8 upper-case hex digits.
func errorID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "err_" + now.UTC().Format("20060102150405") + "x" + strings.ToUpper(hex.EncodeToString(b[:]))
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	if e.typ == "" {
		writeJSON(w, e.status, map[string]string{"message": e.msg})
		return
	}
	writeJSON(w, e.status, struct {
		ID      string `json:"id"`
		Code    int    `json:"code"`
		Type    string `json:"type"`
		Message string `json:"message"`
	}{errorID(s.now()), e.status, e.typ, e.msg})
}

func (s *Server) writeFailure(w http.ResponseWriter, f failure) {
	if f.retryAfter > 0 {
		secs := (f.retryAfter + time.Second - 1) / time.Second
		w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}
	typ := errorType(f.status)
	msg := http.StatusText(f.status)
	if msg == "" {
		msg = "Injected failure"
	}
	s.writeError(w, &apiError{f.status, typ, msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only types of this package are written; they always encode.
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
