package chattest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/botbridge/botbridge/chat"
)

// Request validation mirrors what the server's generated JSON Schema (run by
// ajv) refuses, with ajv's messages: the first failure only, prefixed by the
// instance path below the body ("/payload/text must NOT have fewer than 1
// characters"). Top-level bodies accept unknown properties, as on the service.

// maxBodyBytes is the Chat API's request size limit (1 MB, spec §12).
const maxBodyBytes = 1 << 20

// maxProfile is the longest profile accepted (spec §12).
const maxProfile = 1000

type body map[string]json.RawMessage

// readBody decodes a JSON object body; an empty body is an empty object.
func readBody(w http.ResponseWriter, r *http.Request) (body, *apiError) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge("Request body exceeds the maximum allowed size of %d bytes", maxBodyBytes)
		}
		return nil, errValidation(msgInvalidJSON)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return body{}, nil
	}
	if !json.Valid(data) {
		return nil, errValidation(msgInvalidJSON)
	}
	if data[0] != '{' {
		return nil, errValidation("must be object")
	}
	var b body
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, errValidation(msgInvalidJSON)
	}
	return b, nil
}

// str returns the string property name. A property that is absent gives
// ok false, or an error when it is required.
func (b body) str(name string, required bool, maxLen int) (v string, ok bool, e *apiError) {
	raw, present := b[name]
	if !present {
		if required {
			return "", false, errValidation("must have required property '%s'", name)
		}
		return "", false, nil
	}
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
		return "", false, errValidation("/%s must be string", name)
	}
	if maxLen > 0 && utf8.RuneCountInString(v) > maxLen {
		return "", false, errValidation("/%s must NOT have more than %d characters", name, maxLen)
	}
	return v, true, nil
}

// object returns the object property name, compacted.
func (b body) object(name string, required bool) (json.RawMessage, *apiError) {
	raw, present := b[name]
	if !present {
		if required {
			return nil, errValidation("must have required property '%s'", name)
		}
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errValidation("/%s must be object", name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errValidation(msgInvalidJSON)
	}
	return buf.Bytes(), nil
}

// userFields are the optional properties of createUser, getOrCreateUser and
// updateUser.
type userFields struct {
	name, pictureURL, profile          string
	hasName, hasPictureURL, hasProfile bool
}

func (b body) userFields() (f userFields, e *apiError) {
	if f.name, f.hasName, e = b.str("name", false, 0); e != nil {
		return f, e
	}
	if f.pictureURL, f.hasPictureURL, e = b.str("pictureUrl", false, 0); e != nil {
		return f, e
	}
	f.profile, f.hasProfile, e = b.str("profile", false, maxProfile)
	return f, e
}

func (f userFields) any() bool { return f.hasName || f.hasPictureURL || f.hasProfile }

func (f userFields) apply(u *user) {
	if f.hasName {
		u.Name = f.name
	}
	if f.hasPictureURL {
		u.PictureURL = f.pictureURL
	}
	if f.hasProfile {
		u.Profile = f.profile
	}
}

// validateFID applies the server's validateFid rules, with its messages.
// Length counts UTF-16 units, as JavaScript does.
func validateFID(id string) *apiError {
	if len(utf16.Encode([]rune(id))) > chat.MaxIDLength {
		return errInvalidPayload(fmt.Sprintf("Fid length exceeds the maximum allowed length of %d", chat.MaxIDLength))
	}
	if id == "" {
		return errInvalidPayload("Fid contains invalid characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '\\' || c == '/') {
			return errInvalidPayload("Fid contains invalid characters")
		}
	}
	return nil
}

// messagePayload validates the payload of createMessage and returns it
// compacted. Unknown properties inside a payload are kept, as the service
// stores them.
func (b body) messagePayload() (json.RawMessage, *apiError) {
	raw, present := b["payload"]
	if !present {
		return nil, errValidation("must have required property 'payload'")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errValidation(msgInvalidJSON)
	}
	if e := checkPayload(v, "/payload", false); e != nil {
		return nil, e
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errValidation(msgInvalidJSON)
	}
	if buf.Len() > chat.MaxPayloadBytes {
		return nil, errTooLarge("Message payload is %d bytes, the maximum is %d", buf.Len(), chat.MaxPayloadBytes)
	}
	return buf.Bytes(), nil
}

// checkPayload validates one payload against the schema of spec §5. In a bloc
// only text, markdown, image, audio, video, file and location are allowed.
func checkPayload(v any, path string, inBloc bool) *apiError {
	o, e := asObject(v, path)
	if e != nil {
		return e
	}
	if e := o.require("type"); e != nil {
		return e
	}
	typ, ok := o.m["type"].(string)
	if !ok {
		return errValidation("%s/type must be string", path)
	}
	switch typ {
	case chat.TypeText:
		return o.strings(true, "text")
	case chat.TypeMarkdown:
		return o.strings(true, "markdown")
	case chat.TypeImage:
		return o.strings(true, "imageUrl")
	case chat.TypeAudio:
		return o.strings(true, "audioUrl")
	case chat.TypeVideo:
		return o.strings(true, "videoUrl")
	case chat.TypeFile:
		if e := o.strings(true, "fileUrl"); e != nil {
			return e
		}
		return o.strings(false, "title")
	case chat.TypeLocation:
		if e := o.require("latitude", "longitude"); e != nil {
			return e
		}
		for _, n := range []string{"latitude", "longitude"} {
			if _, ok := o.m[n].(float64); !ok {
				return errValidation("%s/%s must be number", path, n)
			}
		}
		for _, n := range []string{"address", "title"} {
			if e := o.optString(n, false); e != nil {
				return e
			}
		}
		return nil
	}
	if inBloc {
		return errValidation("%s/type must be equal to one of the allowed values", path)
	}
	switch typ {
	case chat.TypeCard:
		return checkCard(o)
	case chat.TypeCarousel:
		if e := o.require("items"); e != nil {
			return e
		}
		return o.array("items", func(p string, v any) *apiError {
			c, e := asObject(v, p)
			if e != nil {
				return e
			}
			if e := c.require("type"); e != nil {
				return e
			}
			if c.m["type"] != chat.TypeCard {
				return errValidation("%s/type must be equal to one of the allowed values", p)
			}
			return checkCard(c)
		})
	case chat.TypeChoice, chat.TypeDropdown:
		if e := o.require("text", "options"); e != nil {
			return e
		}
		if e := o.strings(true, "text"); e != nil {
			return e
		}
		return o.array("options", func(p string, v any) *apiError {
			opt, e := asObject(v, p)
			if e != nil {
				return e
			}
			if e := opt.require("label", "value"); e != nil {
				return e
			}
			return opt.strings(true, "label", "value")
		})
	case chat.TypeBloc:
		if e := o.require("items"); e != nil {
			return e
		}
		return o.array("items", func(p string, v any) *apiError { return checkPayload(v, p, true) })
	}
	return errValidation("%s/type must be equal to one of the allowed values", path)
}

func checkCard(o object) *apiError {
	if e := o.require("title", "actions"); e != nil {
		return e
	}
	if e := o.strings(true, "title"); e != nil {
		return e
	}
	if e := o.strings(false, "subtitle", "imageUrl"); e != nil {
		return e
	}
	return o.array("actions", func(p string, v any) *apiError {
		a, e := asObject(v, p)
		if e != nil {
			return e
		}
		if e := a.require("action", "label", "value"); e != nil {
			return e
		}
		switch a.m["action"] {
		case chat.ActionPostback, chat.ActionURL, chat.ActionSay:
		default:
			if _, ok := a.m["action"].(string); !ok {
				return errValidation("%s/action must be string", p)
			}
			return errValidation("%s/action must be equal to one of the allowed values", p)
		}
		return a.strings(true, "label", "value")
	})
}

// object is a decoded JSON object and its instance path.
type object struct {
	path string
	m    map[string]any
}

func asObject(v any, path string) (object, *apiError) {
	m, ok := v.(map[string]any)
	if !ok {
		return object{}, errValidation("%s must be object", path)
	}
	return object{path, m}, nil
}

func (o object) require(names ...string) *apiError {
	for _, n := range names {
		if _, ok := o.m[n]; !ok {
			return errValidation("%s must have required property '%s'", o.path, n)
		}
	}
	return nil
}

// strings checks string properties: required and non-empty when required is
// set, else non-empty when present (the schema's optional strings have
// minLength 1 too).
func (o object) strings(required bool, names ...string) *apiError {
	for _, n := range names {
		if required {
			if e := o.require(n); e != nil {
				return e
			}
		}
		if e := o.optString(n, true); e != nil {
			return e
		}
	}
	return nil
}

func (o object) optString(name string, nonEmpty bool) *apiError {
	v, present := o.m[name]
	if !present {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return errValidation("%s/%s must be string", o.path, name)
	}
	if nonEmpty && s == "" {
		return errValidation("%s/%s must NOT have fewer than 1 characters", o.path, name)
	}
	return nil
}

func (o object) array(name string, each func(path string, v any) *apiError) *apiError {
	v, present := o.m[name]
	if !present {
		return nil
	}
	items, ok := v.([]any)
	if !ok {
		return errValidation("%s/%s must be array", o.path, name)
	}
	for i, it := range items {
		if e := each(fmt.Sprintf("%s/%s/%d", o.path, name, i), it); e != nil {
			return e
		}
	}
	return nil
}
