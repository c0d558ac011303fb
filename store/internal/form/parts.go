package form

import (
	"encoding/json"
	"strings"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// EncodeParts stores the platform ids of a delivery's parts as a JSON array
// ("" for none).
func EncodeParts(p bridge.Parts) string {
	if len(p) == 0 {
		return ""
	}
	b, _ := json.Marshal([]string(p))
	return string(b)
}

// DecodeParts reads what EncodeParts stored. Stores written before parts
// were explicit hold one id, or several joined by commas (Slack).
func DecodeParts(s string) (bridge.Parts, error) {
	switch {
	case s == "":
		return nil, nil
	case s[0] == '[':
		var p []string
		err := json.Unmarshal([]byte(s), &p)
		return p, err
	}
	return strings.Split(s, ","), nil
}

// storedOption is the stored form of a choice option.
type storedOption struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// EncodeOptions returns the stored form of an offer's options.
func EncodeOptions(opts []chat.ChoiceOption) ([]byte, error) {
	s := make([]storedOption, len(opts))
	for i, op := range opts {
		s[i] = storedOption{Label: op.Label, Value: op.Value}
	}
	return json.Marshal(s)
}

// DecodeOptions reads what EncodeOptions stored.
func DecodeOptions(body []byte) ([]chat.ChoiceOption, error) {
	var s []storedOption
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, err
	}
	var out []chat.ChoiceOption
	for _, op := range s {
		out = append(out, chat.ChoiceOption{Label: op.Label, Value: op.Value})
	}
	return out, nil
}
