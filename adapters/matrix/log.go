package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"

	"github.com/rs/zerolog"
)

// Log attribute keys of the adapter, beside the bridge's.
const (
	logUser       = "user"
	logDevice     = "device"
	logEvent      = "event"
	logInviter    = "inviter"
	logReason     = "reason"
	logHomeserver = "homeserver"
	logSession    = "session"
	logCount      = "count"
	logMautrix    = "mautrix"
	logEncryption = "encryption"
	logDirect     = "direct"
	logAlias      = "alias"
	logDirectory  = "directory_room"
	logTrust      = "trust"
)

// logLimited logs msg at level unless a line with the same key was logged
// within the last minute (bridge/logging).
func (a *Adapter) logLimited(level slog.Level, key, msg string, args ...any) {
	a.limiter.Log(a.log, level, key, msg, args...)
}

// zerologTo sends mautrix's zerolog output to log: warnings and errors as
// such, everything else at debug, where operators need it only to dig into
// encryption problems.
func zerologTo(log *slog.Logger) zerolog.Logger {
	level := zerolog.WarnLevel
	if log.Enabled(context.Background(), slog.LevelDebug) {
		level = zerolog.DebugLevel
	}
	return zerolog.New(zerologWriter{log.With(logMautrix, true)}).Level(level).With().Timestamp().Logger()
}

type zerologWriter struct{ log *slog.Logger }

// quiet are mautrix warnings that are expected here: the adapter cancels
// requests when it stops, and decrypts events itself.
var quiet = map[string]bool{
	"Request canceled": true,
	"Client syncer does not implement DispatchableSyncer. Events will not be decrypted automatically.": true,
}

func (w zerologWriter) Write(p []byte) (int, error) {
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		w.log.Debug(string(bytes.TrimSpace(p)))
		return len(p), nil
	}
	level := slog.LevelDebug
	switch fields[zerolog.LevelFieldName] {
	case "warn":
		level = slog.LevelWarn
	case "error", "fatal", "panic":
		level = slog.LevelError
	}
	msg, _ := fields[zerolog.MessageFieldName].(string)
	if quiet[msg] {
		level = slog.LevelDebug
	}
	args := make([]any, 0, 2*len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		switch k {
		case zerolog.LevelFieldName, zerolog.MessageFieldName, zerolog.TimestampFieldName:
			continue
		}
		args = append(args, k, fields[k])
	}
	w.log.Log(context.Background(), level, msg, args...)
	return len(p), nil
}
