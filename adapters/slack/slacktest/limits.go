package slacktest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Slack's documented limits of messages and Block Kit, which the fake
// enforces as Slack does: text over MaxMessageText answers msg_too_long, and
// blocks over any other limit answer invalid_blocks with Slack's explanation
// and the JSON pointer of the offending value in response_metadata.messages.
// Characters are counted as Unicode code points.
const (
	// MaxMessageText is the most characters of a message's text.
	MaxMessageText = 40_000
	// MaxBlocks is the most blocks of one message.
	MaxBlocks = 50
	// MaxSectionText is the most characters of a section's text.
	MaxSectionText = 3_000
	// MaxSectionFields is the most fields of a section, and MaxFieldText
	// the most characters of each.
	MaxSectionFields = 10
	MaxFieldText     = 2_000
	// MaxHeaderText is the most characters of a header block's text.
	MaxHeaderText = 150
	// MaxActionsElements is the most elements of an actions block.
	MaxActionsElements = 25
	// MaxContextElements is the most elements of a context block.
	MaxContextElements = 10
	// MaxOptions is the most options (or option groups) of a select menu.
	MaxOptions = 100
	// MaxButtonText is the most characters of a button's text, and
	// MaxButtonValue of its value.
	MaxButtonText  = 75
	MaxButtonValue = 2_000
	// MaxOptionText is the most characters of an option's text, and
	// MaxOptionValue of its value.
	MaxOptionText  = 75
	MaxOptionValue = 150
	// MaxPlaceholder is the most characters of a select's placeholder.
	MaxPlaceholder = 150
	// MaxActionID is the most characters of an action_id or block_id.
	MaxActionID = 255
	// MaxURL is the most characters of a button's url or an image's
	// image_url, and MaxAltText of an image's alt_text.
	MaxURL     = 3_000
	MaxAltText = 2_000
)

// MaxSharedFiles is the most files one files.completeUploadExternal call
// shares; more answer internal_error. Slack does not document it: 15 files
// fail that way while 14 work (python-slack-sdk issue 1653), and Slack's
// own clients share at most 10 files with a message.
const MaxSharedFiles = 14

// checkBlockLimits applies the limits above to a blocks argument, already
// known to be a JSON array of objects with a type.
func checkBlockLimits(raw json.RawMessage) error {
	var blocks []map[string]any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return errCode("invalid_blocks")
	}
	if len(blocks) > MaxBlocks {
		return tooMany(MaxBlocks, "/blocks")
	}
	for i, b := range blocks {
		at := "/blocks/" + strconv.Itoa(i)
		if err := checkLen(b, "block_id", MaxActionID, at); err != nil {
			return err
		}
		var err error
		switch b["type"] {
		case "section":
			err = checkSection(b, at)
		case "header":
			err = checkTextObject(b, "text", MaxHeaderText, at)
		case "actions":
			err = checkElements(b, MaxActionsElements, at)
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) > MaxContextElements {
				err = tooMany(MaxContextElements, at+"/elements")
			}
		case "image":
			err = checkImage(b, at)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkSection(b map[string]any, at string) error {
	if err := checkTextObject(b, "text", MaxSectionText, at); err != nil {
		return err
	}
	fields, _ := b["fields"].([]any)
	if len(fields) > MaxSectionFields {
		return tooMany(MaxSectionFields, at+"/fields")
	}
	for j, f := range fields {
		if fo, ok := f.(map[string]any); ok {
			if err := checkLen(fo, "text", MaxFieldText, at+"/fields/"+strconv.Itoa(j)); err != nil {
				return err
			}
		}
	}
	if acc, ok := b["accessory"].(map[string]any); ok {
		return checkElement(acc, at+"/accessory")
	}
	return nil
}

func checkElements(b map[string]any, limit int, at string) error {
	els, _ := b["elements"].([]any)
	if len(els) > limit {
		return tooMany(limit, at+"/elements")
	}
	for j, e := range els {
		if eo, ok := e.(map[string]any); ok {
			if err := checkElement(eo, at+"/elements/"+strconv.Itoa(j)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkElement checks an interactive element or an image accessory.
func checkElement(e map[string]any, at string) error {
	if err := checkLen(e, "action_id", MaxActionID, at); err != nil {
		return err
	}
	switch e["type"] {
	case "button":
		if err := checkTextObject(e, "text", MaxButtonText, at); err != nil {
			return err
		}
		if err := checkLen(e, "value", MaxButtonValue, at); err != nil {
			return err
		}
		return checkLen(e, "url", MaxURL, at)
	case "static_select", "multi_static_select":
		if err := checkTextObject(e, "placeholder", MaxPlaceholder, at); err != nil {
			return err
		}
		opts, _ := e["options"].([]any)
		if len(opts) > MaxOptions {
			return tooMany(MaxOptions, at+"/options")
		}
		groups, _ := e["option_groups"].([]any)
		if len(groups) > MaxOptions {
			return tooMany(MaxOptions, at+"/option_groups")
		}
		for j, o := range opts {
			if oo, ok := o.(map[string]any); ok {
				p := at + "/options/" + strconv.Itoa(j)
				if err := checkTextObject(oo, "text", MaxOptionText, p); err != nil {
					return err
				}
				if err := checkLen(oo, "value", MaxOptionValue, p); err != nil {
					return err
				}
			}
		}
	case "image":
		return checkImage(e, at)
	}
	return nil
}

func checkImage(b map[string]any, at string) error {
	if err := checkLen(b, "image_url", MaxURL, at); err != nil {
		return err
	}
	return checkLen(b, "alt_text", MaxAltText, at)
}

// checkTextObject checks the text of the text object in field name.
func checkTextObject(o map[string]any, name string, limit int, at string) error {
	t, ok := o[name].(map[string]any)
	if !ok {
		return nil
	}
	return checkLen(t, "text", limit, at+"/"+name)
}

// checkLen checks that the string in field name has at most limit
// characters.
func checkLen(o map[string]any, name string, limit int, at string) error {
	s, ok := o[name].(string)
	if !ok || utf8.RuneCountInString(s) <= limit {
		return nil
	}
	return invalidBlocks(fmt.Sprintf("must be less than %d characters", limit+1), at+"/"+name)
}

func tooMany(limit int, at string) error {
	return invalidBlocks(fmt.Sprintf("no more than %d items allowed", limit), at)
}

// invalidBlocks is Slack's answer to blocks over a limit.
func invalidBlocks(msg, pointer string) error {
	return &apiError{code: "invalid_blocks", messages: []string{"[ERROR] " + msg + " [json-pointer:" + pointer + "]"}}
}
