package matrix

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/ssss"
	"maunium.net/go/mautrix/crypto/utils"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// The bot's identity: with encryption, its account has cross-signing keys
// (a master key, which people verify, signing a self-signing key, which
// signs the bot's devices, and a user-signing key, which signs the people
// the bot verified). Their private keys live in the account's secret
// storage (SSSS on the homeserver), encrypted with the recovery key, and
// on the device in the crypto store, encrypted with the pickle key. The
// recovery key itself is never stored: it is in the configuration, or the
// operator keeps the one printed when it was generated.

// identity is the adapter's cross-signing and key backup state. The Run
// goroutine owns it.
type identity struct {
	// done is set once cross-signing was set up, restored, or found
	// impossible on this device; connect does not try again.
	done bool
	// backupKey and backupVersion are the key backup's private key and the
	// server's version it belongs to; nil: no backup on this device.
	backupKey     *backup.MegolmBackupKey
	backupVersion id.KeyBackupVersion
	// backupDue is set when room keys may have arrived since the last
	// upload; backupAt is when it last ran.
	backupDue bool
	backupAt  time.Time
}

// recoveryNotice is what RecoveryKeyOut gets when the adapter generated a
// recovery key: the user and the key.
const recoveryNotice = `
botbridge: the recovery key of the Matrix account %s (shown once, stored nowhere):

    %s

Keep it in your secret store and give it to botbridge as matrix.recovery_key,
for example:  recovery_key: ${MATRIX_RECOVERY_KEY}
With it, a new device of the bot (its store lost, or another replica) restores
the bot's cross-signing keys and its key backup, and people who verified the
bot keep trusting it. Without it, a new device is unverified and has to be
verified again.

`

// recoveryKeyBytes decodes a recovery key.
func recoveryKeyBytes(key string) ([]byte, error) {
	b := utils.DecodeBase58RecoveryKey(key)
	if b == nil {
		return nil, errors.New("matrix: the recovery key is not a Matrix recovery key (48 characters in groups of four, as botbridge or Element showed it): check matrix.recovery_key")
	}
	return b, nil
}

// errWrongRecoveryKey is the readiness error of a recovery key that does
// not open the account's secret storage.
var errWrongRecoveryKey = errors.New("matrix: matrix.recovery_key does not open the secret storage of the bot's account (another key, or the account's cross-signing was reset elsewhere): give the recovery key botbridge printed when it set up cross-signing")

// errNoSecretStorage marks an account whose cross-signing keys are not in
// secret storage, where a recovery key could restore them from.
var errNoSecretStorage = errors.New("the bot's account has cross-signing keys but no secret storage holding them (set up by a client without it?): reset cross-signing for the account, or verify this device from a client that has the keys")

// setUpIdentity makes this device part of the bot's cross-signing
// identity: it sets cross-signing and the key backup up when the account
// has none, restores them from secret storage with the recovery key on a
// device that lacks them, and signs the device. Errors that may pass
// (network, 5xx, rate limits) and a wrong recovery key are returned, for
// connect to retry and Ready to report; a homeserver that refuses the
// rest is logged and the bot goes on unverified.
func (a *Adapter) setUpIdentity(ctx context.Context) error {
	if a.crypto == nil || a.identity.done {
		return nil
	}
	err := a.crossSign(ctx)
	switch {
	case err == nil, errors.Is(err, errNoSecretStorage):
		if err != nil {
			a.log.Error("cannot restore the bot's cross-signing keys: this device stays unverified", bridge.LogErr, err)
		}
	case errors.Is(err, errWrongRecoveryKey), ctx.Err() != nil, transient(err):
		return err
	default:
		a.log.Error("cannot set up cross-signing: the bot's device stays unverified, and people cannot verify it", bridge.LogErr, err)
	}
	a.identity.done = true
	return nil
}

// crossSign does the work of setUpIdentity.
func (a *Adapter) crossSign(ctx context.Context) error {
	mach := a.crypto.Machine()
	keys, err := a.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{a.user: {}}})
	if err != nil {
		return fmt.Errorf("matrix: read the bot's cross-signing keys: %w", err)
	}
	master := id.Ed25519("")
	if k, ok := keys.MasterKeys[a.user]; ok {
		master = k.FirstKey()
	}
	local, err := a.localCrossSigningKeys(ctx)
	if err != nil {
		return err
	}
	var storage *ssss.Key
	switch {
	case master == "":
		if storage, err = a.createCrossSigning(ctx); err != nil {
			return err
		}
	case local != nil && local.MasterKey.PublicKey() == master:
		if err := mach.ImportCrossSigningKeys(local.Seeds()); err != nil {
			return fmt.Errorf("matrix: load the bot's cross-signing keys: %w", err)
		}
	case a.opts.RecoveryKey == "":
		a.log.Warn("the bot's account has cross-signing keys, but this device does not hold them: set matrix.recovery_key "+
			"to the recovery key botbridge printed when it set them up; until then this device is unverified and cannot verify people",
			logDevice, a.device)
		return nil
	default:
		if storage, err = a.restoreCrossSigning(ctx, master); err != nil {
			return err
		}
	}
	ssk := mach.CrossSigningKeys.SelfSigningKey.PublicKey()
	dev := keys.DeviceKeys[a.user][a.device]
	if _, signed := dev.Signatures[a.user][id.NewKeyID(id.KeyAlgorithmEd25519, ssk.String())]; !signed {
		if err := mach.SignOwnDevice(ctx, mach.OwnIdentity()); err != nil {
			return fmt.Errorf("matrix: sign the bot's device with its self-signing key: %w", err)
		}
		if err := mach.SignOwnMasterKey(ctx); err != nil {
			return fmt.Errorf("matrix: sign the bot's master key with its device: %w", err)
		}
		a.log.Info("signed this device with the bot's cross-signing keys: people who verified the bot trust it", logDevice, a.device)
	}
	// The bot's own keys as the store sees them, for the trust of its
	// devices and of the key backup's signatures.
	if _, err := mach.FetchKeys(ctx, []id.UserID{a.user}, true); err != nil {
		return fmt.Errorf("matrix: read the bot's devices: %w", err)
	}
	return a.setUpBackup(ctx, storage, storage != nil && master != "")
}

// createCrossSigning sets cross-signing up on an account that has none:
// a secret storage key from the recovery key (generated and printed when
// none is configured), the three cross-signing keys in secret storage and
// in the crypto store, then published. It returns the secret storage key.
func (a *Adapter) createCrossSigning(ctx context.Context) (*ssss.Key, error) {
	mach := a.crypto.Machine()
	raw, generated := []byte(nil), a.opts.RecoveryKey == ""
	if generated {
		raw = make([]byte, 32)
		rand.Read(raw)
	} else {
		var err error
		if raw, err = recoveryKeyBytes(a.opts.RecoveryKey); err != nil {
			return nil, err
		}
	}
	storage, err := ssss.WrapKey(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("matrix: make the secret storage key: %w", err)
	}
	if generated {
		// Shown before anything is published: a key published and never
		// shown would be lost. A run that fails later shows another one.
		if _, err := fmt.Fprintf(a.opts.RecoveryKeyOut, recoveryNotice, a.user, storage.RecoveryKey()); err != nil {
			return nil, fmt.Errorf("matrix: show the generated recovery key: %w", err)
		}
		a.log.Warn("generated the recovery key of the bot's account and printed it once on standard error: keep it and set matrix.recovery_key")
	}
	if err := mach.SSSS.SetKeyData(ctx, storage.ID, storage.Metadata); err != nil {
		return nil, fmt.Errorf("matrix: store the secret storage key: %w", err)
	}
	if err := mach.SSSS.SetDefaultKeyID(ctx, storage.ID); err != nil {
		return nil, fmt.Errorf("matrix: make the secret storage key the default: %w", err)
	}
	keys, err := mach.GenerateCrossSigningKeys()
	if err != nil {
		return nil, fmt.Errorf("matrix: generate cross-signing keys: %w", err)
	}
	if err := mach.UploadCrossSigningKeysToSSSS(ctx, storage, keys); err != nil {
		return nil, fmt.Errorf("matrix: store the cross-signing keys in secret storage: %w", err)
	}
	if err := a.keepCrossSigningKeys(ctx, keys); err != nil {
		return nil, err
	}
	var uia mautrix.UIACallback
	if a.opts.Password != "" {
		uia = func(r *mautrix.RespUserInteractive) any {
			return &mautrix.ReqUIAuthLogin{
				BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: r.Session},
				User:         string(a.user), Password: a.opts.Password,
			}
		}
	}
	if err := mach.PublishCrossSigningKeys(ctx, keys, uia); err != nil {
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.IsStatus(http.StatusUnauthorized) && a.opts.Password == "" {
			return nil, fmt.Errorf("matrix: the homeserver asks for the account's password to publish cross-signing keys: set matrix.password instead of matrix.access_token once: %w", err)
		}
		return nil, fmt.Errorf("matrix: publish cross-signing keys: %w", err)
	}
	a.log.Info("set up cross-signing for the bot's account", logUser, a.user, "master_key", keys.MasterKey.PublicKey())
	return storage, nil
}

// restoreCrossSigning takes the cross-signing keys out of secret storage
// with the recovery key, on a device that lacks them, and checks them
// against the account's master key. It returns the secret storage key.
func (a *Adapter) restoreCrossSigning(ctx context.Context, master id.Ed25519) (*ssss.Key, error) {
	mach := a.crypto.Machine()
	keyID, meta, err := mach.SSSS.GetDefaultKeyData(ctx)
	if errors.Is(err, ssss.ErrNoDefaultKeyID) || errors.Is(err, mautrix.MNotFound) {
		return nil, fmt.Errorf("%w (%v)", errNoSecretStorage, err)
	} else if err != nil {
		return nil, fmt.Errorf("matrix: read the secret storage key of the bot's account: %w", err)
	}
	storage, err := meta.VerifyRecoveryKey(keyID, a.opts.RecoveryKey)
	if err != nil && !errors.Is(err, ssss.ErrUnverifiableKey) {
		return nil, fmt.Errorf("%w (%v)", errWrongRecoveryKey, err)
	}
	if err := mach.FetchCrossSigningKeysFromSSSS(ctx, storage); err != nil {
		switch {
		case errors.Is(err, ssss.ErrKeyDataMACMismatch):
			return nil, fmt.Errorf("%w (%v)", errWrongRecoveryKey, err)
		case errors.Is(err, ssss.ErrNotEncryptedForKey), errors.Is(err, mautrix.MNotFound):
			return nil, fmt.Errorf("%w (%v)", errNoSecretStorage, err)
		}
		return nil, fmt.Errorf("matrix: read the cross-signing keys from secret storage: %w", err)
	}
	if got := mach.CrossSigningKeys.MasterKey.PublicKey(); got != master {
		mach.CrossSigningKeys = nil
		return nil, fmt.Errorf("%w (secret storage holds master key %s, the account publishes %s)", errWrongRecoveryKey, got, master)
	}
	if err := a.keepCrossSigningKeys(ctx, mach.CrossSigningKeys); err != nil {
		return nil, err
	}
	a.log.Info("restored the bot's cross-signing keys from secret storage with the recovery key", logDevice, a.device)
	return storage, nil
}

// Crypto store names of the private keys the device keeps.
var crossSigningSecrets = [...]id.Secret{id.SecretXSMaster, id.SecretXSSelfSigning, id.SecretXSUserSigning}

// keepCrossSigningKeys stores the private cross-signing keys in the crypto
// store, encrypted with the pickle key, for later starts of this device.
func (a *Adapter) keepCrossSigningKeys(ctx context.Context, keys *crypto.CrossSigningKeysCache) error {
	seeds := keys.Seeds()
	for i, seed := range [...][]byte{seeds.MasterKey, seeds.SelfSigningKey, seeds.UserSigningKey} {
		if err := a.crypto.Machine().CryptoStore.PutSecret(ctx, crossSigningSecrets[i], base64.StdEncoding.EncodeToString(seed)); err != nil {
			return fmt.Errorf("matrix: keep the cross-signing keys: %w", err)
		}
	}
	return nil
}

// localCrossSigningKeys returns the private cross-signing keys this device
// keeps, or nil.
func (a *Adapter) localCrossSigningKeys(ctx context.Context) (*crypto.CrossSigningKeysCache, error) {
	var seeds [3][]byte
	for i, name := range crossSigningSecrets {
		v, err := a.crypto.Machine().CryptoStore.GetSecret(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("matrix: read the kept cross-signing keys: %w", err)
		}
		if v == "" {
			return nil, nil
		}
		if seeds[i], err = base64.StdEncoding.DecodeString(v); err != nil {
			return nil, fmt.Errorf("matrix: the kept cross-signing key %s is damaged: %w", name, err)
		}
	}
	cs := crypto.CrossSigningSeeds{MasterKey: seeds[0], SelfSigningKey: seeds[1], UserSigningKey: seeds[2]}
	keys, err := cs.Decode()
	if err != nil {
		return nil, fmt.Errorf("matrix: the kept cross-signing keys are damaged: %w", err)
	}
	return &keys, nil
}
