package chattest_test

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// signalSchemas checks signals against testdata/chat-signals.schema.json (a
// copy of spec/chat-signals.schema.json) with a checker for the subset of JSON
// Schema that file uses. Any other keyword is an error, so the checker never
// passes something it did not look at.
type signalSchemas struct {
	defs map[string]any
}

func loadSchemas(t testing.TB) *signalSchemas {
	t.Helper()
	b, err := os.ReadFile("testdata/chat-signals.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var defs map[string]any
	if err := json.Unmarshal(b, &defs); err != nil {
		t.Fatal(err)
	}
	return &signalSchemas{defs}
}

// check validates a signal of the given wire type ("message_created").
func (s *signalSchemas) check(typ string, signal []byte) error {
	name := camel(typ)
	schema, ok := s.defs[name]
	if !ok {
		return fmt.Errorf("no schema for signal type %q", typ)
	}
	var v any
	if err := json.Unmarshal(signal, &v); err != nil {
		return err
	}
	return validate(schema, v, "")
}

func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// dateTime is RFC 3339 with a Z offset only, as zod's string().datetime()
// requires.
var dateTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

func validate(schemaAny, v any, path string) error {
	if path == "" {
		path = "/"
	}
	schema, ok := schemaAny.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: schema is not an object", path)
	}
	for kw := range schema {
		switch kw {
		case "type", "properties", "required", "additionalProperties", "enum", "anyOf", "minLength", "format", "items", "description":
		default:
			return fmt.Errorf("%s: unsupported schema keyword %q", path, kw)
		}
	}
	if alts, ok := schema["anyOf"].([]any); ok {
		var errs []string
		for _, alt := range alts {
			err := validate(alt, v, path)
			if err == nil {
				errs = nil
				break
			}
			errs = append(errs, err.Error())
		}
		if errs != nil {
			return fmt.Errorf("%s: matches no anyOf alternative: %s", path, strings.Join(errs, " | "))
		}
	}
	if typ, ok := schema["type"].(string); ok {
		if err := checkType(typ, v); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		return fmt.Errorf("%s: %v is not one of %v", path, v, enum)
	}
	if str, ok := v.(string); ok {
		if n, ok := schema["minLength"].(float64); ok && len([]rune(str)) < int(n) {
			return fmt.Errorf("%s: %q is shorter than %v", path, str, n)
		}
		if f, ok := schema["format"].(string); ok {
			if f != "date-time" {
				return fmt.Errorf("%s: unsupported format %q", path, f)
			}
			if !dateTime.MatchString(str) {
				return fmt.Errorf("%s: %q is not a date-time with Z", path, str)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := schema["items"]; ok {
			for i, it := range arr {
				if err := validate(items, it, fmt.Sprintf("%s%d/", path, i)); err != nil {
					return err
				}
			}
		}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	props, _ := schema["properties"].(map[string]any)
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			if _, ok := obj[r.(string)]; !ok {
				return fmt.Errorf("%s: missing required property %q", path, r)
			}
		}
	}
	for k, val := range obj {
		sub, declared := props[k]
		if !declared {
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Errorf("%s: property %q is not allowed", path, k)
				}
				continue
			case nil:
				continue
			default:
				sub = ap
			}
		}
		if err := validate(sub, val, path+k+"/"); err != nil {
			return err
		}
	}
	return nil
}

func checkType(typ string, v any) error {
	ok := false
	switch typ {
	case "object":
		_, ok = v.(map[string]any)
	case "array":
		_, ok = v.([]any)
	case "string":
		_, ok = v.(string)
	case "number":
		_, ok = v.(float64)
	case "boolean":
		_, ok = v.(bool)
	case "null":
		ok = v == nil
	default:
		return fmt.Errorf("unsupported type %q", typ)
	}
	if !ok {
		return fmt.Errorf("%v is not of type %s", v, typ)
	}
	return nil
}

// TestSchemaChecker shows that the checker refuses what the official client
// would turn into "unknown" signals.
func TestSchemaChecker(t *testing.T) {
	s := loadSchemas(t)
	good := `{"type":"message_created","data":{"id":"m","createdAt":"2026-11-22T18:42:20.417Z","payload":{"type":"text","text":"hi","extra":1},"userId":"u","conversationId":"c","isBot":false}}`
	if err := s.check("message_created", []byte(good)); err != nil {
		t.Fatalf("valid signal refused: %v", err)
	}
	for name, bad := range map[string]string{
		"offset timestamp":   strings.Replace(good, "417Z", "417+00:00", 1),
		"null metadata":      strings.Replace(good, `"isBot":false`, `"isBot":false,"metadata":null`, 1),
		"missing isBot":      strings.Replace(good, `,"isBot":false`, ``, 1),
		"extra data field":   strings.Replace(good, `"isBot":false`, `"isBot":false,"x":1`, 1),
		"empty text":         strings.Replace(good, `"text":"hi"`, `"text":""`, 1),
		"unknown payload":    strings.Replace(good, `"type":"text"`, `"type":"sticker"`, 1),
		"isBot as string":    strings.Replace(good, `"isBot":false`, `"isBot":"false"`, 1),
		"bad card action":    `{"type":"message_created","data":{"id":"m","createdAt":"2026-11-22T18:42:20.417Z","payload":{"type":"card","title":"t","actions":[{"action":"call","label":"l","value":"v"}]},"userId":"u","conversationId":"c","isBot":true}}`,
		"card in bloc":       `{"type":"message_created","data":{"id":"m","createdAt":"2026-11-22T18:42:20.417Z","payload":{"type":"bloc","items":[{"type":"card","title":"t","actions":[]}]},"userId":"u","conversationId":"c","isBot":true}}`,
		"event id missing":   `{"type":"event_created","data":{"createdAt":"2026-11-22T18:42:20.417Z","payload":{},"conversationId":"c","userId":"u","isBot":true}}`,
		"unknown top member": `{"type":"participant_added","data":{"conversationId":"c","participantId":"u"},"id":"x"}`,
	} {
		typ := "message_created"
		if strings.Contains(bad, `"event_created"`) {
			typ = "event_created"
		} else if strings.Contains(bad, `"participant_added"`) {
			typ = "participant_added"
		}
		if err := s.check(typ, []byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
	nullID := `{"type":"event_created","data":{"id":null,"createdAt":"2026-11-22T18:42:20.417Z","payload":{"a":1},"conversationId":"c","userId":"u","isBot":true}}`
	if err := s.check("event_created", []byte(nullID)); err != nil {
		t.Errorf("bot event with null id refused: %v", err)
	}
}
