package chattest

import (
	"net/http"

	"github.com/botbridge/botbridge/chat"
)

func (c *call) createUser() (any, *apiError) {
	id, hasID, e := c.body.str("id", false, 0)
	if e != nil {
		return nil, e
	}
	f, e := c.body.userFields()
	if e != nil {
		return nil, e
	}
	if c.s.manual {
		return nil, errUnauthorized(msgSharedKeyOnly)
	}
	if hasID {
		if e := validateFID(id); e != nil {
			return nil, e
		}
	} else {
		id = newID("user")
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	uid := chat.UserID(id)
	if s.st.users[uid] != nil {
		return nil, errAlreadyExists("User with id %s already exists", id)
	}
	key, err := s.sign(uid)
	if err != nil {
		return nil, &apiError{http.StatusInternalServerError, "Internal", "sign user key: " + err.Error()}
	}
	u := s.st.addUser(uid, s.stamp())
	f.apply(u)
	s.changed()
	return struct {
		User userJSON     `json:"user"`
		Key  chat.UserKey `json:"key"`
	}{u.json(), key}, nil
}

type userAnswer struct {
	User userJSON `json:"user"`
}

func (c *call) getOrCreateUser() (any, *apiError) {
	f, e := c.body.userFields()
	if e != nil {
		return nil, e
	}
	id, e := c.keyID()
	if e != nil {
		return nil, e
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == s.st.botUser {
		return nil, errUnauthorized(msgInvalidKey)
	}
	u := s.st.users[id]
	if u == nil {
		if e := validateFID(string(id)); e != nil {
			return nil, e
		}
		u = s.st.addUser(id, s.stamp())
		f.apply(u)
		s.changed()
	} else if f.any() {
		f.apply(u)
		u.UpdatedAt = s.stamp()
		s.changed()
	}
	return userAnswer{u.json()}, nil
}

func (c *call) getUser() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	return userAnswer{u.json()}, nil
}

func (c *call) updateUser() (any, *apiError) {
	f, e := c.body.userFields()
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	f.apply(u)
	u.UpdatedAt = c.s.stamp()
	c.s.changed()
	return userAnswer{u.json()}, nil
}

// deleteUser forgets the user and their participations and ends their
// streams; what the service does to those is unconfirmed.
func (c *call) deleteUser() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	c.s.st.deleteUser(u.ID)
	c.s.hub.endUser(u.ID, endClose)
	c.s.changed()
	return empty{}, nil
}
