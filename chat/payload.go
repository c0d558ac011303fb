package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Payload is the content of a message, discriminated on the wire by its
// "type" field (spec §5). The concrete types are Text, Markdown, Image, Audio,
// Video, File, Location, Card, Carousel, Choice, Dropdown, Bloc, and
// RawPayload for any type this package does not know.
type Payload interface {
	// PayloadType returns the wire value of the "type" field.
	PayloadType() string
	validate() error
}

// Payload type names as they appear on the wire.
const (
	TypeText     = "text"
	TypeMarkdown = "markdown"
	TypeImage    = "image"
	TypeAudio    = "audio"
	TypeVideo    = "video"
	TypeFile     = "file"
	TypeLocation = "location"
	TypeCard     = "card"
	TypeCarousel = "carousel"
	TypeChoice   = "choice"
	TypeDropdown = "dropdown"
	TypeBloc     = "bloc"
)

// MaxPayloadBytes is the largest encoded message payload the platform accepts
// (128 KB, spec §12). The client refuses larger payloads before sending.
const MaxPayloadBytes = 128 * 1024

// ErrInvalidPayload is matched by errors.Is for payloads refused before they
// are sent, and for the server's 400 answers.
var ErrInvalidPayload = errors.New("invalid payload")

// Text is a plain text message.
type Text struct {
	Text string `json:"text"`
}

// Markdown is a message in Markdown.
type Markdown struct {
	Markdown string `json:"markdown"`
}

// Image is an image given by URL.
type Image struct {
	ImageURL string `json:"imageUrl"`
}

// Audio is an audio clip given by URL.
type Audio struct {
	AudioURL string `json:"audioUrl"`
}

// Video is a video given by URL.
type Video struct {
	VideoURL string `json:"videoUrl"`
}

// File is a file given by URL, with an optional title.
type File struct {
	FileURL string `json:"fileUrl"`
	Title   string `json:"title,omitempty"`
}

// Location is a point on the map with an optional address and title.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Address   string  `json:"address,omitempty"`
	Title     string  `json:"title,omitempty"`
}

// Card action kinds.
const (
	ActionPostback = "postback" // the value is sent back to the bot
	ActionURL      = "url"      // the value is a link to open
	ActionSay      = "say"      // the value is said by the user as text
)

// CardAction is a button of a card.
type CardAction struct {
	Action string `json:"action"`
	Label  string `json:"label"`
	Value  string `json:"value"`
}

// Card is a title with optional subtitle and image, and buttons.
type Card struct {
	Title    string       `json:"title"`
	Subtitle string       `json:"subtitle,omitempty"`
	ImageURL string       `json:"imageUrl,omitempty"`
	Actions  []CardAction `json:"actions"`
}

// Carousel is a row of cards.
type Carousel struct {
	Items []Card `json:"items"`
}

// ChoiceOption is one answer of a Choice or Dropdown: Label is shown, Value is what
// the bot receives.
type ChoiceOption struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Choice is a question with buttons.
type Choice struct {
	Text    string         `json:"text"`
	Options []ChoiceOption `json:"options"`
}

// Dropdown is a question with a select menu.
type Dropdown struct {
	Text    string         `json:"text"`
	Options []ChoiceOption `json:"options"`
}

// Bloc is several payloads shown as one message. Items may be Text, Markdown,
// Image, Audio, Video, File or Location.
type Bloc struct {
	Items []Payload `json:"items"`
}

// RawPayload holds a payload whose type this package does not know, or whose
// fields could not be decoded. JSON is the payload exactly as received.
type RawPayload struct {
	Type string
	JSON json.RawMessage
}

func (Text) PayloadType() string         { return TypeText }
func (Markdown) PayloadType() string     { return TypeMarkdown }
func (Image) PayloadType() string        { return TypeImage }
func (Audio) PayloadType() string        { return TypeAudio }
func (Video) PayloadType() string        { return TypeVideo }
func (File) PayloadType() string         { return TypeFile }
func (Location) PayloadType() string     { return TypeLocation }
func (Card) PayloadType() string         { return TypeCard }
func (Carousel) PayloadType() string     { return TypeCarousel }
func (Choice) PayloadType() string       { return TypeChoice }
func (Dropdown) PayloadType() string     { return TypeDropdown }
func (Bloc) PayloadType() string         { return TypeBloc }
func (p RawPayload) PayloadType() string { return p.Type }

// typed adds the "type" discriminator in front of a payload's own fields.
type typed[T any] struct {
	Type string `json:"type"`
	Body T
}

func (t typed[T]) MarshalJSON() ([]byte, error) {
	body, err := json.Marshal(t.Body)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(body) + len(t.Type) + 12)
	b.WriteString(`{"type":`)
	tb, _ := json.Marshal(t.Type)
	b.Write(tb)
	if len(body) > 2 { // body is a JSON object; splice its fields in
		b.WriteByte(',')
		b.Write(body[1:])
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// The aliases drop the MarshalJSON methods so that typed can encode the fields.
type (
	textFields     Text
	markdownFields Markdown
	imageFields    Image
	audioFields    Audio
	videoFields    Video
	fileFields     File
	locationFields Location
	cardFields     Card
	carouselFields struct {
		Items []Card `json:"items"`
	}
	choiceFields   Choice
	dropdownFields Dropdown
	blocFields     struct {
		Items []json.RawMessage `json:"items"`
	}
)

// MarshalJSON encodes the payload with its "type".
func (p Text) MarshalJSON() ([]byte, error) {
	return typed[textFields]{TypeText, textFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Markdown) MarshalJSON() ([]byte, error) {
	return typed[markdownFields]{TypeMarkdown, markdownFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Image) MarshalJSON() ([]byte, error) {
	return typed[imageFields]{TypeImage, imageFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Audio) MarshalJSON() ([]byte, error) {
	return typed[audioFields]{TypeAudio, audioFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Video) MarshalJSON() ([]byte, error) {
	return typed[videoFields]{TypeVideo, videoFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p File) MarshalJSON() ([]byte, error) {
	return typed[fileFields]{TypeFile, fileFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Location) MarshalJSON() ([]byte, error) {
	return typed[locationFields]{TypeLocation, locationFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the card with its "type"; inside a carousel every item
// carries "type":"card" too.
func (p Card) MarshalJSON() ([]byte, error) {
	if p.Actions == nil {
		p.Actions = []CardAction{}
	}
	return typed[cardFields]{TypeCard, cardFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Carousel) MarshalJSON() ([]byte, error) {
	items := p.Items
	if items == nil {
		items = []Card{}
	}
	return typed[carouselFields]{TypeCarousel, carouselFields{Items: items}}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Choice) MarshalJSON() ([]byte, error) {
	if p.Options == nil {
		p.Options = []ChoiceOption{}
	}
	return typed[choiceFields]{TypeChoice, choiceFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the payload with its "type".
func (p Dropdown) MarshalJSON() ([]byte, error) {
	if p.Options == nil {
		p.Options = []ChoiceOption{}
	}
	return typed[dropdownFields]{TypeDropdown, dropdownFields(p)}.MarshalJSON()
}

// MarshalJSON encodes the bloc and each of its items with their "type".
func (p Bloc) MarshalJSON() ([]byte, error) {
	items := make([]json.RawMessage, 0, len(p.Items))
	for i, it := range p.Items {
		if it == nil {
			return nil, fmt.Errorf("bloc item %d: nil payload", i)
		}
		b, err := json.Marshal(it)
		if err != nil {
			return nil, fmt.Errorf("bloc item %d: %w", i, err)
		}
		items = append(items, b)
	}
	return typed[blocFields]{TypeBloc, blocFields{Items: items}}.MarshalJSON()
}

// MarshalJSON returns the payload as it was received. A RawPayload built by
// hand without JSON encodes as {"type": Type}.
func (p RawPayload) MarshalJSON() ([]byte, error) {
	if len(p.JSON) > 0 {
		return p.JSON, nil
	}
	return json.Marshal(struct {
		Type string `json:"type"`
	}{p.Type})
}

// DecodePayload decodes a payload from its JSON form. An unknown type, or a
// known type whose fields do not decode, yields a RawPayload; only input that
// is not a JSON object with a string "type" is an error. Decoded payloads are
// not validated: see ValidatePayload.
func DecodePayload(data []byte) (Payload, error) {
	// The usual case in one pass: every payload field in one struct.
	var u payloadUnion
	if err := json.Unmarshal(data, &u); err == nil && u.Type != nil {
		if p, ok := u.payload(data); ok {
			return p, nil
		}
	}
	return decodePayloadSlow(data)
}

// payloadUnion holds the fields of every payload type, so that a payload
// decodes in one pass of the JSON decoder.
type payloadUnion struct {
	Type      *string         `json:"type"`
	Text      string          `json:"text"`
	Markdown  string          `json:"markdown"`
	ImageURL  string          `json:"imageUrl"`
	AudioURL  string          `json:"audioUrl"`
	VideoURL  string          `json:"videoUrl"`
	FileURL   string          `json:"fileUrl"`
	Title     string          `json:"title"`
	Subtitle  string          `json:"subtitle"`
	Address   string          `json:"address"`
	Latitude  *float64        `json:"latitude"`
	Longitude *float64        `json:"longitude"`
	Actions   []CardAction    `json:"actions"`
	Options   []ChoiceOption  `json:"options"`
	Items     json.RawMessage `json:"items"`
}

// payload builds the payload of u's type; false leaves it to the slow path
// (an unknown type, or items to decode).
func (u *payloadUnion) payload(data []byte) (Payload, bool) {
	switch *u.Type {
	case TypeText:
		return Text{Text: u.Text}, true
	case TypeMarkdown:
		return Markdown{Markdown: u.Markdown}, true
	case TypeImage:
		return Image{ImageURL: u.ImageURL}, true
	case TypeAudio:
		return Audio{AudioURL: u.AudioURL}, true
	case TypeVideo:
		return Video{VideoURL: u.VideoURL}, true
	case TypeFile:
		return File{FileURL: u.FileURL, Title: u.Title}, true
	case TypeLocation:
		if u.Latitude == nil || u.Longitude == nil {
			return nil, false
		}
		return Location{Latitude: *u.Latitude, Longitude: *u.Longitude, Address: u.Address, Title: u.Title}, true
	case TypeCard:
		return Card{Title: u.Title, Subtitle: u.Subtitle, ImageURL: u.ImageURL, Actions: u.Actions}, true
	case TypeChoice:
		return Choice{Text: u.Text, Options: u.Options}, true
	case TypeDropdown:
		return Dropdown{Text: u.Text, Options: u.Options}, true
	}
	return nil, false
}

// decodePayloadSlow decodes the type first, then the fields of that type
// alone, so that extra fields of another type's name do not matter.
func decodePayloadSlow(data []byte) (Payload, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	if head.Type == nil {
		return nil, fmt.Errorf("%w: no type", ErrInvalidPayload)
	}
	raw := RawPayload{Type: *head.Type, JSON: append(json.RawMessage(nil), data...)}
	var (
		p   Payload
		err error
	)
	switch *head.Type {
	case TypeText:
		p, err = decodeAs[Text](data)
	case TypeMarkdown:
		p, err = decodeAs[Markdown](data)
	case TypeImage:
		p, err = decodeAs[Image](data)
	case TypeAudio:
		p, err = decodeAs[Audio](data)
	case TypeVideo:
		p, err = decodeAs[Video](data)
	case TypeFile:
		p, err = decodeAs[File](data)
	case TypeLocation:
		p, err = decodeAs[Location](data)
	case TypeCard:
		p, err = decodeAs[Card](data)
	case TypeCarousel:
		p, err = decodeAs[Carousel](data)
	case TypeChoice:
		p, err = decodeAs[Choice](data)
	case TypeDropdown:
		p, err = decodeAs[Dropdown](data)
	case TypeBloc:
		p, err = decodeBloc(data)
	default:
		return raw, nil
	}
	if err != nil {
		return raw, nil
	}
	return p, nil
}

// decodeAs decodes the fields of T; the "type" member is ignored.
func decodeAs[T any](data []byte) (Payload, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	p, ok := any(v).(Payload)
	if !ok {
		return nil, fmt.Errorf("%T is not a payload", v)
	}
	return p, nil
}

func decodeBloc(data []byte) (Payload, error) {
	var f blocFields
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	b := Bloc{Items: make([]Payload, 0, len(f.Items))}
	for _, raw := range f.Items {
		it, err := DecodePayload(raw)
		if err != nil {
			return nil, err
		}
		b.Items = append(b.Items, it)
	}
	return b, nil
}

// ValidatePayload checks a payload against the server's rules before it is
// sent: required fields present and non-empty, known card actions, bloc items
// of an allowed type, and an encoded size of at most MaxPayloadBytes. The
// error wraps ErrInvalidPayload and names the field.
func ValidatePayload(p Payload) error {
	if p == nil {
		return fmt.Errorf("%w: no payload", ErrInvalidPayload)
	}
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidPayload, p.PayloadType(), err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidPayload, p.PayloadType(), err)
	}
	if len(b) > MaxPayloadBytes {
		return fmt.Errorf("%w: %s payload is %d bytes, the limit is %d", ErrInvalidPayload, p.PayloadType(), len(b), MaxPayloadBytes)
	}
	return nil
}

func required(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s must not be empty", field)
	}
	return nil
}

func (p Text) validate() error     { return required("text", p.Text) }
func (p Markdown) validate() error { return required("markdown", p.Markdown) }
func (p Image) validate() error    { return required("imageUrl", p.ImageURL) }
func (p Audio) validate() error    { return required("audioUrl", p.AudioURL) }
func (p Video) validate() error    { return required("videoUrl", p.VideoURL) }
func (p File) validate() error     { return required("fileUrl", p.FileURL) }
func (p Location) validate() error { return nil }

func (p Card) validate() error {
	if err := required("title", p.Title); err != nil {
		return err
	}
	for i, a := range p.Actions {
		switch a.Action {
		case ActionPostback, ActionURL, ActionSay:
		default:
			return fmt.Errorf("actions[%d].action %q is not postback, url or say", i, a.Action)
		}
		if a.Label == "" || a.Value == "" {
			return fmt.Errorf("actions[%d]: label and value must not be empty", i)
		}
	}
	return nil
}

func (p Carousel) validate() error {
	for i, c := range p.Items {
		if err := c.validate(); err != nil {
			return fmt.Errorf("items[%d]: %v", i, err)
		}
	}
	return nil
}

func validateOptions(text string, opts []ChoiceOption) error {
	if err := required("text", text); err != nil {
		return err
	}
	for i, o := range opts {
		if o.Label == "" || o.Value == "" {
			return fmt.Errorf("options[%d]: label and value must not be empty", i)
		}
	}
	return nil
}

func (p Choice) validate() error   { return validateOptions(p.Text, p.Options) }
func (p Dropdown) validate() error { return validateOptions(p.Text, p.Options) }

func (p Bloc) validate() error {
	for i, it := range p.Items {
		switch it.(type) {
		case Text, Markdown, Image, Audio, Video, File, Location:
		default:
			if it == nil {
				return fmt.Errorf("items[%d] is empty", i)
			}
			return fmt.Errorf("items[%d]: type %q is not allowed in a bloc", i, it.PayloadType())
		}
		if err := it.validate(); err != nil {
			return fmt.Errorf("items[%d]: %v", i, err)
		}
	}
	return nil
}

func (p RawPayload) validate() error {
	return fmt.Errorf("unknown payload type %q", p.Type)
}
