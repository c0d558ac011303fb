package chattest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// state is everything the emulator knows. It is guarded by Server.mu.
type state struct {
	secret  []byte
	botUser chat.UserID
	seq     int64 // orders conversations, messages and participants; never reused

	users    map[chat.UserID]*user
	convs    map[chat.ConversationID]*conversation
	owned    map[chat.UserID][]*conversation // by ascending seq
	messages map[chat.MessageID]*message
	events   map[chat.EventID]*event
}

type user struct {
	ID         chat.UserID `json:"id"`
	Name       string      `json:"name,omitempty"`
	PictureURL string      `json:"pictureUrl,omitempty"`
	Profile    string      `json:"profile,omitempty"`
	CreatedAt  time.Time   `json:"createdAt"`
	UpdatedAt  time.Time   `json:"updatedAt"`
}

type conversation struct {
	ID        chat.ConversationID
	Owner     chat.UserID
	ChosenID  bool // created with a caller-chosen id, so getOrCreateConversation finds it
	CreatedAt time.Time
	UpdatedAt time.Time
	Seq       int64

	participants map[chat.UserID]int64 // value: seq of joining
	messages     []*message            // by ascending seq
}

type message struct {
	ID             chat.MessageID      `json:"id"`
	ConversationID chat.ConversationID `json:"conversationId"`
	UserID         chat.UserID         `json:"userId"`
	Payload        json.RawMessage     `json:"payload"`
	Metadata       json.RawMessage     `json:"metadata,omitempty"`
	CreatedAt      time.Time           `json:"createdAt"`
	Seq            int64               `json:"seq"`
}

type event struct {
	ID             chat.EventID        `json:"id"`
	ConversationID chat.ConversationID `json:"conversationId"`
	UserID         chat.UserID         `json:"userId"`
	Payload        json.RawMessage     `json:"payload"`
	CreatedAt      time.Time           `json:"createdAt"`
}

func newState() *state {
	return &state{
		users:    make(map[chat.UserID]*user),
		convs:    make(map[chat.ConversationID]*conversation),
		owned:    make(map[chat.UserID][]*conversation),
		messages: make(map[chat.MessageID]*message),
		events:   make(map[chat.EventID]*event),
	}
}

func (st *state) next() int64 {
	st.seq++
	return st.seq
}

func (st *state) addUser(id chat.UserID, now time.Time) *user {
	u := &user{ID: id, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	st.users[id] = u
	return u
}

func (st *state) deleteUser(id chat.UserID) {
	delete(st.users, id)
	for _, c := range st.convs {
		delete(c.participants, id)
	}
}

func (st *state) addConversation(id chat.ConversationID, chosen bool, owner chat.UserID, now time.Time) *conversation {
	c := &conversation{
		ID: id, Owner: owner, ChosenID: chosen,
		CreatedAt: now.UTC(), UpdatedAt: now.UTC(), Seq: st.next(),
		participants: map[chat.UserID]int64{owner: st.next()},
	}
	st.convs[id] = c
	st.owned[owner] = append(st.owned[owner], c)
	return c
}

func (st *state) deleteConversation(c *conversation) {
	delete(st.convs, c.ID)
	st.owned[c.Owner] = slices.DeleteFunc(st.owned[c.Owner], func(o *conversation) bool { return o == c })
	if len(st.owned[c.Owner]) == 0 {
		delete(st.owned, c.Owner)
	}
	for _, m := range c.messages {
		delete(st.messages, m.ID)
	}
	for id, e := range st.events {
		if e.ConversationID == c.ID {
			delete(st.events, id)
		}
	}
}

func (st *state) addMessage(c *conversation, from chat.UserID, payload, metadata json.RawMessage, now time.Time) *message {
	m := &message{
		ID: chat.MessageID(newID("msg")), ConversationID: c.ID, UserID: from,
		Payload: payload, Metadata: metadata, CreatedAt: now.UTC(), Seq: st.next(),
	}
	st.messages[m.ID] = m
	c.messages = append(c.messages, m)
	return m
}

func (st *state) deleteMessage(m *message) {
	delete(st.messages, m.ID)
	if c := st.convs[m.ConversationID]; c != nil {
		c.messages = slices.DeleteFunc(c.messages, func(o *message) bool { return o == m })
	}
}

// participantsInOrder returns the participants by order of joining, with the
// seq of their joining.
func (c *conversation) participantsInOrder() []participant {
	ps := make([]participant, 0, len(c.participants))
	for id, seq := range c.participants {
		ps = append(ps, participant{id, seq})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Seq < ps[j].Seq })
	return ps
}

type participant struct {
	ID  chat.UserID `json:"id"`
	Seq int64       `json:"seq"`
}

// Wire forms. Timestamps use chat.Timestamp (UTC, milliseconds, Z); optional
// fields are omitted, never null.

type userJSON struct {
	ID         chat.UserID `json:"id"`
	Name       string      `json:"name,omitempty"`
	PictureURL string      `json:"pictureUrl,omitempty"`
	Profile    string      `json:"profile,omitempty"`
	CreatedAt  string      `json:"createdAt"`
	UpdatedAt  string      `json:"updatedAt"`
}

func (u *user) json() userJSON {
	return userJSON{u.ID, u.Name, u.PictureURL, u.Profile, chat.Timestamp(u.CreatedAt), chat.Timestamp(u.UpdatedAt)}
}

type conversationJSON struct {
	ID        chat.ConversationID `json:"id"`
	CreatedAt string              `json:"createdAt"`
	UpdatedAt string              `json:"updatedAt"`
}

func (c *conversation) json() conversationJSON {
	return conversationJSON{c.ID, chat.Timestamp(c.CreatedAt), chat.Timestamp(c.UpdatedAt)}
}

type messageJSON struct {
	ID             chat.MessageID      `json:"id"`
	CreatedAt      string              `json:"createdAt"`
	Payload        json.RawMessage     `json:"payload"`
	UserID         chat.UserID         `json:"userId"`
	ConversationID chat.ConversationID `json:"conversationId"`
	Metadata       json.RawMessage     `json:"metadata,omitempty"`
}

func (m *message) json() messageJSON {
	return messageJSON{m.ID, chat.Timestamp(m.CreatedAt), m.Payload, m.UserID, m.ConversationID, m.Metadata}
}

// chat converts a stored message for the Go API. The payload was valid when
// stored, so decoding cannot fail; metadata is an object by validation.
func (m *message) chat() chat.Message {
	out := chat.Message{ID: m.ID, CreatedAt: m.CreatedAt, UserID: m.UserID, ConversationID: m.ConversationID}
	out.Payload, _ = chat.DecodePayload(m.Payload)
	if len(m.Metadata) > 0 {
		_ = json.Unmarshal(m.Metadata, &out.Metadata)
	}
	return out
}

type eventJSON struct {
	ID             chat.EventID        `json:"id"`
	CreatedAt      string              `json:"createdAt"`
	Payload        json.RawMessage     `json:"payload"`
	ConversationID chat.ConversationID `json:"conversationId"`
	UserID         chat.UserID         `json:"userId"`
}

func (e *event) json() eventJSON {
	return eventJSON{e.ID, chat.Timestamp(e.CreatedAt), e.Payload, e.ConversationID, e.UserID}
}

// Pagination. Lists are kept in ascending seq; a token holds the seq of the
// last item returned, so items inserted while a caller pages never show up
// twice and deleted ones simply vanish.

// pageNewest returns up to n items older than before, newest first, and the
// cursor of the next page (0 when this is the last one).
func pageNewest[T any](asc []T, seq func(T) int64, before int64, n int) ([]T, int64) {
	end := sort.Search(len(asc), func(i int) bool { return seq(asc[i]) >= before })
	start := max(end-n, 0)
	out := make([]T, 0, end-start)
	for i := end - 1; i >= start; i-- {
		out = append(out, asc[i])
	}
	if start == 0 || len(out) == 0 {
		return out, 0
	}
	return out, seq(out[len(out)-1])
}

// pageOldest returns up to n items newer than after, oldest first, and the
// cursor of the next page (0 when this is the last one).
func pageOldest[T any](asc []T, seq func(T) int64, after int64, n int) ([]T, int64) {
	start := sort.Search(len(asc), func(i int) bool { return seq(asc[i]) > after })
	end := min(start+n, len(asc))
	out := asc[start:end:end]
	if end == len(asc) || len(out) == 0 {
		return out, 0
	}
	return out, seq(out[len(out)-1])
}

func encodeToken(kind string, seq int64) string {
	if seq == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(seq, 10)))
}

var errBadToken = errors.New("invalid nextToken")

// decodeToken returns the cursor of a token of kind; def for an empty token.
func decodeToken(kind, token string, def int64) (int64, error) {
	if token == "" {
		return def, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, errBadToken
	}
	k, v, ok := strings.Cut(string(b), ":")
	if !ok || k != kind {
		return 0, errBadToken
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, errBadToken
	}
	return n, nil
}

// Ids. Generated ids look like Botpress ones: a prefix and a ULID (48-bit
// millisecond time, 80 random bits, Crockford base32).

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newID(prefix string) string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	// 128 bits as 26 base32 digits, most significant first.
	var out [26]byte
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return prefix + "_" + string(out[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b
}

// Persistence.

const stateVersion = 1

type stateFile struct {
	Version       int                 `json:"version"`
	Secret        []byte              `json:"secret,omitempty"`
	BotUserID     chat.UserID         `json:"botUserId"`
	Seq           int64               `json:"seq"`
	Users         []*user             `json:"users"`
	Conversations []conversationState `json:"conversations"`
	Events        []*event            `json:"events"`
}

type conversationState struct {
	ID           chat.ConversationID `json:"id"`
	Owner        chat.UserID         `json:"owner"`
	ChosenID     bool                `json:"chosenId"`
	CreatedAt    time.Time           `json:"createdAt"`
	UpdatedAt    time.Time           `json:"updatedAt"`
	Seq          int64               `json:"seq"`
	Participants []participant       `json:"participants"`
	Messages     []*message          `json:"messages"`
}

func (st *state) marshal() ([]byte, error) {
	f := stateFile{Version: stateVersion, Secret: st.secret, BotUserID: st.botUser, Seq: st.seq}
	for _, u := range st.users {
		f.Users = append(f.Users, u)
	}
	slices.SortFunc(f.Users, func(a, b *user) int { return strings.Compare(string(a.ID), string(b.ID)) })
	for _, c := range st.convs {
		f.Conversations = append(f.Conversations, conversationState{
			ID: c.ID, Owner: c.Owner, ChosenID: c.ChosenID, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Seq: c.Seq,
			Participants: c.participantsInOrder(), Messages: c.messages,
		})
	}
	slices.SortFunc(f.Conversations, func(a, b conversationState) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, e := range st.events {
		f.Events = append(f.Events, e)
	}
	slices.SortFunc(f.Events, func(a, b *event) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return json.MarshalIndent(f, "", "  ")
}

// loadState reads a state file; it returns nil, nil when there is none.
func loadState(path string) (*state, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("load state %s: %w", path, err)
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("load state %s: version %d, want %d", path, f.Version, stateVersion)
	}
	st := newState()
	st.secret, st.botUser, st.seq = f.Secret, f.BotUserID, f.Seq
	for _, u := range f.Users {
		st.users[u.ID] = u
	}
	for _, cs := range f.Conversations {
		c := &conversation{
			ID: cs.ID, Owner: cs.Owner, ChosenID: cs.ChosenID, CreatedAt: cs.CreatedAt, UpdatedAt: cs.UpdatedAt, Seq: cs.Seq,
			participants: make(map[chat.UserID]int64, len(cs.Participants)), messages: cs.Messages,
		}
		for _, p := range cs.Participants {
			c.participants[p.ID] = p.Seq
		}
		for _, m := range c.messages {
			st.messages[m.ID] = m
		}
		st.convs[c.ID] = c
		st.owned[c.Owner] = append(st.owned[c.Owner], c) // the file lists conversations by seq
	}
	for _, e := range f.Events {
		st.events[e.ID] = e
	}
	return st, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new file, never a torn one. The file may hold a signing secret.
func writeFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
