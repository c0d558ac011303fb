package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Signal is one realtime notification of a conversation stream (spec §9.3).
// The concrete types are MessageCreated, EventCreated, MessageDeleted,
// ParticipantAdded, ParticipantRemoved, MessageStreamDelta,
// MessageStreamComplete and MessageStreamAbort.
type Signal interface {
	// SignalType returns the wire value of the signal's "type".
	SignalType() string
}

// Signal type names as they appear on the wire.
const (
	SignalMessageCreated        = "message_created"
	SignalEventCreated          = "event_created"
	SignalMessageDeleted        = "message_deleted"
	SignalParticipantAdded      = "participant_added"
	SignalParticipantRemoved    = "participant_removed"
	SignalMessageStreamDelta    = "message_stream_delta"
	SignalMessageStreamComplete = "message_stream_complete"
	SignalMessageStreamAbort    = "message_stream_abort"
)

// MessageCreated announces a new message; IsBot tells a bot reply from a
// user's message.
type MessageCreated struct {
	Message
	IsBot bool
}

// EventCreated announces a custom event. Events pushed by the bot have an
// empty ID and IsBot set.
type EventCreated struct {
	Event
	IsBot bool
}

// MessageDeleted announces a deleted message. The real server puts internal
// Botpress ids in ConversationID and UserID (spec §13 quirk 4).
type MessageDeleted struct {
	ID             MessageID      `json:"id"`
	ConversationID ConversationID `json:"conversationId"`
	UserID         UserID         `json:"userId"`
}

// ParticipantAdded announces a participant joining the conversation.
type ParticipantAdded struct {
	ConversationID ConversationID `json:"conversationId"`
	ParticipantID  UserID         `json:"participantId"`
}

// ParticipantRemoved announces a participant leaving the conversation.
type ParticipantRemoved struct {
	ConversationID ConversationID `json:"conversationId"`
	ParticipantID  UserID         `json:"participantId"`
}

// MessageStreamDelta is one piece of a message the bot is streaming. Deltas of
// one stream share StreamID and are numbered by Sequence.
type MessageStreamDelta struct {
	StreamID        string         `json:"streamId"`
	ConversationID  ConversationID `json:"conversationId"`
	UserID          UserID         `json:"userId"`
	CreatedAt       time.Time      `json:"createdAt"`
	ClientMessageID string         `json:"clientMessageId,omitempty"`
	Sequence        float64        `json:"sequence"`
	Delta           string         `json:"delta"`
}

// MessageStreamComplete carries the final message of a stream. Its
// message_created signal follows.
type MessageStreamComplete struct {
	StreamID string  `json:"streamId"`
	Message  Message `json:"message"`
}

// MessageStreamAbort announces that the bot gave up a stream.
type MessageStreamAbort struct {
	StreamID       string         `json:"streamId"`
	ConversationID ConversationID `json:"conversationId"`
}

func (MessageCreated) SignalType() string        { return SignalMessageCreated }
func (EventCreated) SignalType() string          { return SignalEventCreated }
func (MessageDeleted) SignalType() string        { return SignalMessageDeleted }
func (ParticipantAdded) SignalType() string      { return SignalParticipantAdded }
func (ParticipantRemoved) SignalType() string    { return SignalParticipantRemoved }
func (MessageStreamDelta) SignalType() string    { return SignalMessageStreamDelta }
func (MessageStreamComplete) SignalType() string { return SignalMessageStreamComplete }
func (MessageStreamAbort) SignalType() string    { return SignalMessageStreamAbort }

// MarshalJSON encodes the message fields and isBot flat, as on the wire.
func (s MessageCreated) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		messageJSON
		IsBot bool `json:"isBot"`
	}{s.Message.wire(), s.IsBot})
}

// MarshalJSON encodes the delta with its time in the service's format.
func (s MessageStreamDelta) MarshalJSON() ([]byte, error) {
	type fields MessageStreamDelta
	return json.Marshal(struct {
		fields
		CreatedAt string `json:"createdAt"`
	}{fields(s), Timestamp(s.CreatedAt)})
}

// UnmarshalJSON decodes the flat wire form.
func (s *MessageCreated) UnmarshalJSON(data []byte) error {
	var bot struct {
		IsBot *bool `json:"isBot"`
	}
	if err := json.Unmarshal(data, &bot); err != nil {
		return err
	}
	if bot.IsBot == nil {
		return errors.New("isBot missing")
	}
	if err := json.Unmarshal(data, &s.Message); err != nil {
		return err
	}
	s.IsBot = *bot.IsBot
	return nil
}

// MarshalJSON encodes the event fields and isBot flat; an empty ID is null.
func (s EventCreated) MarshalJSON() ([]byte, error) {
	var id *EventID
	if s.ID != "" {
		id = &s.ID
	}
	payload := s.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		ID             *EventID        `json:"id"`
		CreatedAt      string          `json:"createdAt"`
		Payload        json.RawMessage `json:"payload"`
		ConversationID ConversationID  `json:"conversationId"`
		UserID         UserID          `json:"userId"`
		IsBot          bool            `json:"isBot"`
	}{id, Timestamp(s.CreatedAt), payload, s.ConversationID, s.UserID, s.IsBot})
}

// UnmarshalJSON decodes the flat wire form, accepting a null id.
func (s *EventCreated) UnmarshalJSON(data []byte) error {
	var w struct {
		ID             *EventID        `json:"id"`
		CreatedAt      time.Time       `json:"createdAt"`
		Payload        json.RawMessage `json:"payload"`
		ConversationID ConversationID  `json:"conversationId"`
		UserID         UserID          `json:"userId"`
		IsBot          *bool           `json:"isBot"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if w.IsBot == nil {
		return errors.New("isBot missing")
	}
	*s = EventCreated{Event: Event{CreatedAt: w.CreatedAt, Payload: w.Payload, ConversationID: w.ConversationID, UserID: w.UserID}, IsBot: *w.IsBot}
	if w.ID != nil {
		s.ID = *w.ID
	}
	return nil
}

// ErrMalformedSignal is matched by errors.Is when a frame's data is not a
// signal this package can decode.
var ErrMalformedSignal = errors.New("malformed signal")

// ErrUnknownSignal is matched by errors.Is when a frame holds a well-formed
// signal of a type this package does not know.
var ErrUnknownSignal = errors.New("unknown signal")

// ParseSignal decodes the data of one SSE frame. It returns an error wrapping
// ErrUnknownSignal for a signal type it does not know, and ErrMalformedSignal
// for anything else that does not decode or lacks a required field. The
// keepalive "ping" is not a signal: callers check for it first.
func ParseSignal(data []byte) (Signal, error) {
	// The frequent case, a new message, in one pass of the JSON decoder;
	// anything else, or anything odd, takes the careful path.
	var fast struct {
		Type string `json:"type"`
		Data *struct {
			messageWire
			IsBot *bool `json:"isBot"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &fast); err == nil && fast.Type == SignalMessageCreated && fast.Data != nil &&
		fast.Data.IsBot != nil && fast.Data.ID != "" && fast.Data.ConversationID != "" && len(fast.Data.Payload) > 0 &&
		string(fast.Data.Payload) != "null" {
		if p, err := DecodePayload(fast.Data.Payload); err == nil {
			w := fast.Data.messageWire
			return MessageCreated{IsBot: *fast.Data.IsBot, Message: Message{ID: w.ID, CreatedAt: w.CreatedAt, Payload: p,
				UserID: w.UserID, ConversationID: w.ConversationID, Metadata: w.Metadata}}, nil
		}
	}
	return parseSignal(data)
}

func parseSignal(data []byte) (Signal, error) {
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignal, err)
	}
	if env.Type == "" || len(env.Data) == 0 || string(env.Data) == "null" {
		return nil, fmt.Errorf("%w: missing type or data", ErrMalformedSignal)
	}
	var (
		s   Signal
		err error
	)
	switch env.Type {
	case SignalMessageCreated:
		var v MessageCreated
		err = json.Unmarshal(env.Data, &v)
		if err == nil {
			err = checkMessage(v.Message)
		}
		s = v
	case SignalEventCreated:
		var v EventCreated
		err = json.Unmarshal(env.Data, &v)
		if err == nil && (v.ConversationID == "" || v.UserID == "") {
			err = errors.New("conversationId and userId are required")
		}
		s = v
	case SignalMessageDeleted:
		var v MessageDeleted
		err = json.Unmarshal(env.Data, &v)
		if err == nil && (v.ID == "" || v.ConversationID == "") {
			err = errors.New("id and conversationId are required")
		}
		s = v
	case SignalParticipantAdded:
		var v ParticipantAdded
		err = json.Unmarshal(env.Data, &v)
		if err == nil && (v.ConversationID == "" || v.ParticipantID == "") {
			err = errors.New("conversationId and participantId are required")
		}
		s = v
	case SignalParticipantRemoved:
		var v ParticipantRemoved
		err = json.Unmarshal(env.Data, &v)
		if err == nil && (v.ConversationID == "" || v.ParticipantID == "") {
			err = errors.New("conversationId and participantId are required")
		}
		s = v
	case SignalMessageStreamDelta:
		var v MessageStreamDelta
		err = json.Unmarshal(env.Data, &v)
		if err == nil && (v.StreamID == "" || v.ConversationID == "") {
			err = errors.New("streamId and conversationId are required")
		}
		s = v
	case SignalMessageStreamComplete:
		var v MessageStreamComplete
		err = json.Unmarshal(env.Data, &v)
		if err == nil && v.StreamID == "" {
			err = errors.New("streamId is required")
		}
		if err == nil {
			err = checkMessage(v.Message)
		}
		s = v
	case SignalMessageStreamAbort:
		var v MessageStreamAbort
		err = json.Unmarshal(env.Data, &v)
		if err == nil && (v.StreamID == "" || v.ConversationID == "") {
			err = errors.New("streamId and conversationId are required")
		}
		s = v
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownSignal, env.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedSignal, env.Type, err)
	}
	return s, nil
}

func checkMessage(m Message) error {
	if m.ID == "" || m.ConversationID == "" || m.Payload == nil {
		return errors.New("message id, conversationId and payload are required")
	}
	return nil
}
