package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"
)

// Names of the adapter's cursors in the store, after "matrix.<user id>.".
const (
	cursorToken   = "access_token"
	cursorDevice  = "device_id"
	cursorSince   = "next_batch"
	cursorPending = "undecrypted"
)

func cursorName(user id.UserID, name string) string {
	return "matrix." + string(user) + "." + name
}

// errBadToken is the readiness error of a refused access token.
var errBadToken = errors.New("matrix: the access token is not valid (logged out?): check matrix.access_token, or set matrix.password")

// connect checks that the URL is a homeserver, logs in and, the first time,
// opens the state and crypto stores. Its errors say what to fix.
func (a *Adapter) connect(ctx context.Context) error {
	if err := a.probe(ctx); err != nil {
		return err
	}
	if err := a.login(ctx, false); err != nil {
		return err
	}
	if err := a.openStores(ctx); err != nil {
		return err
	}
	if err := a.setUpIdentity(ctx); err != nil {
		return err
	}
	if name, err := a.cli.GetOwnDisplayName(ctx); err == nil {
		a.mu.Lock()
		a.displayName = name.DisplayName
		a.mu.Unlock()
	}
	return nil
}

// probe asks /_matrix/client/versions, which every homeserver answers
// without authentication.
func (a *Adapter) probe(ctx context.Context) error {
	resp, err := a.cli.Versions(ctx)
	url := a.opts.HomeserverURL
	var he mautrix.HTTPError
	switch {
	case err == nil && len(resp.Versions) > 0:
		return nil
	case err == nil:
		return fmt.Errorf("matrix: %s is not a Matrix homeserver (its /_matrix/client/versions lists no versions): check matrix.homeserver_url", url)
	case errors.As(err, &he) && he.Response != nil && he.Response.StatusCode >= 500:
		return fmt.Errorf("matrix: the homeserver at %s is unavailable: %w", url, err)
	case errors.As(err, &he) && he.Response != nil:
		return fmt.Errorf("matrix: %s is not a Matrix homeserver (GET /_matrix/client/versions: %v): check matrix.homeserver_url; it is the client API's base URL, such as https://matrix.example.org", url, err)
	}
	return fmt.Errorf("matrix: cannot reach the homeserver at %s: %w: check matrix.homeserver_url and the network", url, err)
}

// login makes the client's token valid. With an access token it asks who
// the token belongs to. With a password it reuses the token kept in the
// store, or logs in on the kept device (fresh: the kept token was refused)
// and keeps the new token.
func (a *Adapter) login(ctx context.Context, fresh bool) error {
	if a.opts.AccessToken != "" {
		a.setToken(a.opts.AccessToken)
		who, err := a.cli.Whoami(ctx)
		switch {
		case errors.Is(err, mautrix.MUnknownToken), errors.Is(err, mautrix.MMissingToken):
			return errBadToken
		case err != nil:
			return fmt.Errorf("matrix: check the access token: %w", err)
		case a.opts.UserID != "" && who.UserID != a.opts.UserID:
			return fmt.Errorf("matrix: the access token belongs to %s, not to %s: check matrix.user_id and matrix.access_token", who.UserID, a.opts.UserID)
		case who.DeviceID == "" && a.opts.PickleKey != "":
			return errors.New("matrix: the homeserver does not say which device the access token belongs to, and encryption needs it: set matrix.password instead of matrix.access_token")
		}
		return a.loggedIn(who.UserID, who.DeviceID)
	}

	user := a.opts.UserID
	keyToken, keyDevice := cursorName(user, cursorToken), cursorName(user, cursorDevice)
	device, err := a.opts.Store.Cursor(ctx, keyDevice)
	if err != nil {
		return fmt.Errorf("matrix: read the kept device: %w", err)
	}
	if !fresh {
		token, err := a.opts.Store.Cursor(ctx, keyToken)
		if err != nil {
			return fmt.Errorf("matrix: read the kept access token: %w", err)
		}
		if token != "" {
			a.setToken(token)
			who, err := a.cli.Whoami(ctx)
			switch {
			case err == nil && who.UserID == user:
				return a.loggedIn(who.UserID, who.DeviceID)
			case err == nil, errors.Is(err, mautrix.MUnknownToken):
				a.log.Info("the kept access token is no longer valid; logging in again", logUser, user, logDevice, device)
			default:
				return fmt.Errorf("matrix: check the kept access token: %w", err)
			}
		}
	}
	a.setToken("")
	resp, err := a.cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(user)},
		Password:                 a.opts.Password,
		DeviceID:                 id.DeviceID(device),
		InitialDeviceDisplayName: a.opts.DeviceName,
	})
	var he mautrix.HTTPError
	switch {
	case errors.Is(err, mautrix.MForbidden), errors.As(err, &he) && he.IsStatus(http.StatusForbidden):
		return fmt.Errorf("matrix: the homeserver refused the password of %s: check matrix.user_id and matrix.password: %w", user, err)
	case err != nil:
		return fmt.Errorf("matrix: log in as %s: %w", user, err)
	case resp.UserID != user:
		return fmt.Errorf("matrix: logged in as %s, not %s: check matrix.user_id", resp.UserID, user)
	}
	if err := a.opts.Store.SetCursor(ctx, keyDevice, string(resp.DeviceID)); err != nil {
		return fmt.Errorf("matrix: keep the device: %w", err)
	}
	if err := a.opts.Store.SetCursor(ctx, keyToken, resp.AccessToken); err != nil {
		return fmt.Errorf("matrix: keep the access token: %w", err)
	}
	a.setToken(resp.AccessToken)
	a.log.Info("logged in", logUser, user, logDevice, resp.DeviceID)
	if err := a.loggedIn(resp.UserID, resp.DeviceID); err != nil {
		return err
	}
	if fresh && a.crypto != nil {
		return a.republishKeys(ctx)
	}
	return nil
}

// republishKeys uploads the device's keys again when the homeserver lost
// them: a logout deletes the device with its keys, and the login that
// follows makes it again under the same id, empty.
func (a *Adapter) republishKeys(ctx context.Context) error {
	resp, err := a.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: map[id.UserID]mautrix.DeviceIDList{a.user: {a.device}}})
	if err != nil {
		return fmt.Errorf("matrix: check the device's keys: %w", err)
	}
	if keys, ok := resp.DeviceKeys[a.user][a.device]; ok && len(keys.Keys) > 0 {
		return nil
	}
	mach := a.crypto.Machine()
	mach.GetAccount().Shared = false
	if err := mach.ShareKeys(ctx, -1); err != nil {
		return fmt.Errorf("matrix: upload the device's keys again: %w", err)
	}
	a.log.Info("uploaded the device's encryption keys again after a new login", logDevice, a.device)
	// The device's signature went with its keys; sign it again.
	a.identity.done = false
	return a.setUpIdentity(ctx)
}

// loggedIn records who the adapter is. The user and device are fixed by the
// first login: the crypto store belongs to that device.
func (a *Adapter) loggedIn(user id.UserID, device id.DeviceID) error {
	if a.user == "" {
		a.user, a.device = user, device
		a.cli.UserID, a.cli.DeviceID = user, device
		return nil
	}
	if user != a.user || (device != a.device && a.crypto != nil) {
		return fmt.Errorf("matrix: the login changed from %s (device %s) to %s (device %s) while running: restart botbridge", a.user, a.device, user, device)
	}
	return nil
}

// openStores opens, once, the room state cache and, with encryption, the
// crypto helper, on the bridge's database.
func (a *Adapter) openStores(ctx context.Context) error {
	dialect := a.opts.Dialect
	if dialect == "" {
		dialect = DialectSQLite
	}
	db, err := dbutil.NewWithDB(a.opts.DB, dialect)
	if err != nil {
		return fmt.Errorf("matrix: open the state store: %w", err)
	}
	if a.state == nil {
		state := sqlstatestore.NewSQLStateStore(db, dbutil.ZeroLogger(a.cli.Log), false)
		if err := state.Upgrade(ctx); err != nil {
			return fmt.Errorf("matrix: upgrade the state store: %w", err)
		}
		a.cli.StateStore = state
		a.sync.OnEvent(a.cli.StateStoreSyncHandler)
		a.state = state
	}
	if a.opts.PickleKey == "" || a.crypto != nil {
		return nil
	}
	// The helper gets the database rather than a crypto.Store so that it
	// makes its own; it must never be Closed, which would close the pool
	// the bridge gave.
	helper, err := cryptohelper.NewCryptoHelper(a.cli, []byte(a.opts.PickleKey), db)
	if err != nil {
		return fmt.Errorf("matrix: encryption: %w", err)
	}
	if err := helper.Init(ctx); err != nil {
		// mautrix has no sentinel for this one.
		if strings.Contains(err.Error(), "mismatching device ID") {
			return fmt.Errorf("matrix: the store holds the encryption keys of another device than %s (%w): use that device's access token, or set matrix.password so that botbridge logs in on its own device", a.device, err)
		}
		return fmt.Errorf("matrix: encryption: %w", err)
	}
	a.cli.Crypto = helper
	a.crypto = helper
	if a.verify, err = newVerifier(ctx, a); err != nil {
		return err
	}
	a.log.Info("end-to-end encryption ready", logUser, a.user, logDevice, a.device)
	return nil
}

// removedReason returns why the bot is no longer in room, or "".
func (a *Adapter) removedReason(room id.RoomID) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.removed[room]
}
