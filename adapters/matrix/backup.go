package matrix

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/crypto/ssss"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// The key backup (m.megolm_backup.v1.curve25519-aes-sha2) keeps the room
// keys the bot receives on the homeserver, encrypted to the backup's
// public key. Its private key is in the account's secret storage,
// encrypted with the recovery key, so that a restored device can decrypt
// what was sent to the bot's earlier device.

const (
	// backupEvery is the longest time between two uploads of new room
	// keys; after a sync that brought to-device events, they go at once.
	backupEvery = time.Minute
	// backupBatch is how many room keys one upload carries at most.
	backupBatch = 100
)

// backupPublicKey is the public key of key as auth_data names it.
func backupPublicKey(key *backup.MegolmBackupKey) id.Ed25519 {
	return id.Ed25519(base64.RawStdEncoding.EncodeToString(key.PublicKey().Bytes()))
}

// setUpBackup finds the key backup this device writes room keys to: the
// account's current backup when the device has its key, from the crypto
// store or from secret storage (storage, when the recovery key opened
// it). With storage and no backup on the account, it creates one. With
// restore (a new device), it imports the backup's room keys.
func (a *Adapter) setUpBackup(ctx context.Context, storage *ssss.Key, restore bool) error {
	mach := a.crypto.Machine()
	key, err := a.localBackupKey(ctx)
	if err != nil {
		return err
	}
	fromStorage := false
	if key == nil && storage != nil {
		data, err := mach.SSSS.GetDecryptedAccountData(ctx, event.AccountDataMegolmBackupKey, storage)
		var he mautrix.HTTPError
		switch {
		case err == nil:
			if key, err = backup.MegolmBackupKeyFromBytes(data); err != nil {
				a.log.Warn("the key backup's key in secret storage is damaged; room keys are not backed up", bridge.LogErr, err)
				return nil
			}
			fromStorage = true
		case errors.Is(err, mautrix.MNotFound):
		case errors.As(err, &he) && transient(err):
			return fmt.Errorf("matrix: read the key backup's key from secret storage: %w", err)
		default:
			// Not encrypted for this key, or not as it should be: the
			// backup is another client's business.
			a.log.Warn("cannot read the key backup's key from secret storage; room keys are not backed up", bridge.LogErr, err)
			return nil
		}
	}
	version, err := a.cli.GetKeyBackupLatestVersion(ctx)
	switch {
	case errors.Is(err, mautrix.MNotFound):
		if storage == nil {
			a.log.Warn("the bot's account has no key backup and this device cannot make one without the recovery key: set matrix.recovery_key")
			return nil
		}
		return a.createBackup(ctx, storage)
	case err != nil:
		return fmt.Errorf("matrix: read the key backup's version: %w", err)
	case version.Algorithm != id.KeyBackupAlgorithmMegolmBackupV1:
		a.log.Warn("the key backup of the bot's account uses an algorithm botbridge does not know; room keys are not backed up",
			"algorithm", version.Algorithm, "version", version.Version)
		return nil
	case key == nil || backupPublicKey(key) != version.AuthData.PublicKey:
		a.log.Warn("this device does not hold the key of the bot's key backup (made elsewhere, or after the recovery key botbridge knows): "+
			"room keys are not backed up; set matrix.recovery_key to the account's recovery key", "version", version.Version)
		return nil
	}
	if fromStorage {
		if err := a.keepBackupKey(ctx, key); err != nil {
			return err
		}
	}
	a.identity.backupKey, a.identity.backupVersion, a.identity.backupDue = key, version.Version, true
	if restore {
		n, failed, err := a.restoreBackup(ctx)
		if err != nil {
			return err
		}
		a.log.Info("restored room keys from the key backup", logCount, n, "failed", failed, "version", version.Version)
	}
	return nil
}

// createBackup makes a key backup version with a new key, kept in secret
// storage under storage and in the crypto store, signed by the device and
// the master key so that the bot's other devices trust it.
func (a *Adapter) createBackup(ctx context.Context, storage *ssss.Key) error {
	mach := a.crypto.Machine()
	key, err := backup.NewMegolmBackupKey()
	if err != nil {
		return fmt.Errorf("matrix: make a key backup key: %w", err)
	}
	if err := mach.SSSS.SetEncryptedAccountData(ctx, event.AccountDataMegolmBackupKey, key.Bytes(), storage); err != nil {
		return fmt.Errorf("matrix: store the key backup's key in secret storage: %w", err)
	}
	if err := a.keepBackupKey(ctx, key); err != nil {
		return err
	}
	auth := backup.MegolmAuthData{PublicKey: backupPublicKey(key)}
	devSig, err := mach.GetAccount().SignJSON(auth)
	if err != nil {
		return fmt.Errorf("matrix: sign the key backup: %w", err)
	}
	masterSig, err := mach.CrossSigningKeys.MasterKey.SignJSON(auth)
	if err != nil {
		return fmt.Errorf("matrix: sign the key backup: %w", err)
	}
	auth.Signatures = signatures.NewSingleSignature(a.user, id.KeyAlgorithmEd25519, a.device.String(), devSig)
	auth.Signatures[a.user][id.NewKeyID(id.KeyAlgorithmEd25519, mach.CrossSigningKeys.MasterKey.PublicKey().String())] = masterSig
	resp, err := a.cli.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: auth,
	})
	if err != nil {
		return fmt.Errorf("matrix: create the key backup: %w", err)
	}
	a.identity.backupKey, a.identity.backupVersion, a.identity.backupDue = key, resp.Version, true
	a.log.Info("created the key backup of the bot's account", "version", resp.Version)
	return nil
}

// keepBackupKey stores the key backup's private key in the crypto store,
// encrypted with the pickle key.
func (a *Adapter) keepBackupKey(ctx context.Context, key *backup.MegolmBackupKey) error {
	err := a.crypto.Machine().CryptoStore.PutSecret(ctx, id.SecretMegolmBackupV1, base64.StdEncoding.EncodeToString(key.Bytes()))
	if err != nil {
		return fmt.Errorf("matrix: keep the key backup's key: %w", err)
	}
	return nil
}

// localBackupKey returns the key backup's private key this device keeps,
// or nil.
func (a *Adapter) localBackupKey(ctx context.Context) (*backup.MegolmBackupKey, error) {
	v, err := a.crypto.Machine().CryptoStore.GetSecret(ctx, id.SecretMegolmBackupV1)
	if err != nil || v == "" {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("matrix: the kept key backup key is damaged: %w", err)
	}
	key, err := backup.MegolmBackupKeyFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("matrix: the kept key backup key is damaged: %w", err)
	}
	return key, nil
}

// restoreBackup imports every room key of the backup into the crypto
// store. It returns how many it imported and how many it could not.
func (a *Adapter) restoreBackup(ctx context.Context) (imported, failed int, err error) {
	mach := a.crypto.Machine()
	version := a.identity.backupVersion
	keys, err := a.cli.GetKeyBackup(ctx, version)
	if err != nil {
		return 0, 0, fmt.Errorf("matrix: download the key backup: %w", err)
	}
	for room, rb := range keys.Rooms {
		for session, data := range rb.Sessions {
			sd, err := data.SessionData.Decrypt(a.identity.backupKey)
			if err == nil {
				_, err = mach.ImportRoomKeyFromBackup(ctx, version, room, session, sd)
			}
			if err != nil {
				failed++
				a.log.Debug("a room key of the backup cannot be imported", bridge.LogRoom, room, logSession, session, bridge.LogErr, err)
				continue
			}
			imported++
		}
	}
	return imported, failed, nil
}

// backUpKeys uploads the room keys the backup lacks, when keys may have
// come (a sync with to-device events) or backupEvery passed. Failures are
// logged and tried again at the next chance; they never stop the sync.
func (a *Adapter) backUpKeys(ctx context.Context) {
	st := &a.identity
	if st.backupKey == nil || (!st.backupDue && a.now().Sub(st.backupAt) < backupEvery) {
		return
	}
	n, err := a.uploadKeys(ctx)
	if ctx.Err() != nil {
		return
	}
	st.backupAt = a.now()
	if err != nil {
		a.logLimited(slog.LevelWarn, "backup", "cannot back up room keys; trying again later", bridge.LogErr, err)
		return
	}
	st.backupDue = false
	if n > 0 {
		a.log.Debug("backed up room keys", logCount, n, "version", st.backupVersion)
	}
}

// backupMarker is the crypto store's way to mark one room key as backed
// up without writing the whole key again (mautrix's SQL store has it).
type backupMarker interface {
	SetGroupSessionKeyBackupVersion(ctx context.Context, session id.SessionID, version id.KeyBackupVersion) error
}

// uploadKeys uploads the room keys not yet in the current backup, in
// batches, marking each batch as backed up once the server has it.
func (a *Adapter) uploadKeys(ctx context.Context) (int, error) {
	mach := a.crypto.Machine()
	version := a.identity.backupVersion
	sessions, err := mach.CryptoStore.GetGroupSessionsWithoutKeyBackupVersion(ctx, version).AsList()
	if err != nil {
		return 0, fmt.Errorf("list room keys to back up: %w", err)
	}
	done := 0
	for len(sessions) > 0 {
		batch := sessions[:min(len(sessions), backupBatch)]
		sessions = sessions[len(batch):]
		req := &mautrix.ReqKeyBackup{Rooms: make(map[id.RoomID]mautrix.ReqRoomKeyBackup)}
		for _, s := range batch {
			first := s.Internal.FirstKnownIndex()
			exported, err := s.Internal.Export(first)
			if err != nil {
				return done, fmt.Errorf("export room key %s: %w", s.ID(), err)
			}
			enc, err := backup.EncryptSessionData(a.identity.backupKey, backup.MegolmSessionData{
				Algorithm:          id.AlgorithmMegolmV1,
				ForwardingKeyChain: s.ForwardingChains,
				SenderClaimedKeys:  backup.SenderClaimedKeys{Ed25519: s.SigningKey},
				SenderKey:          s.SenderKey,
				SessionKey:         string(exported),
				SharedHistory:      s.SharedHistory,
			})
			if err != nil {
				return done, fmt.Errorf("encrypt room key %s: %w", s.ID(), err)
			}
			raw, err := json.Marshal(enc)
			if err != nil {
				return done, fmt.Errorf("encode room key %s: %w", s.ID(), err)
			}
			room := req.Rooms[s.RoomID]
			if room.Sessions == nil {
				room.Sessions = make(map[id.SessionID]mautrix.ReqKeyBackupData)
			}
			room.Sessions[s.ID()] = mautrix.ReqKeyBackupData{
				FirstMessageIndex: int(first),
				ForwardedCount:    len(s.ForwardingChains),
				SessionData:       raw,
			}
			req.Rooms[s.RoomID] = room
		}
		if _, err := a.cli.PutKeysInBackup(ctx, version, req); err != nil {
			return done, fmt.Errorf("upload room keys: %w", err)
		}
		for _, s := range batch {
			var err error
			if m, ok := mach.CryptoStore.(backupMarker); ok {
				err = m.SetGroupSessionKeyBackupVersion(ctx, s.ID(), version)
			} else {
				s.KeyBackupVersion = version
				err = mach.CryptoStore.PutGroupSession(ctx, s)
			}
			if err != nil {
				return done, fmt.Errorf("mark room key %s backed up: %w", s.ID(), err)
			}
		}
		done += len(batch)
	}
	return done, nil
}
