package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// cmdRun runs the service from a configuration file until ctx ends.
func cmdRun(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "botbridge.yaml", "configuration `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	log.Info("botbridge starting", "version", versionString(), "config", *path, "store", cfg.Store.Path)
	svc, err := NewService(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	if err := svc.Run(ctx); err != nil {
		return err
	}
	log.Info("botbridge stopped")
	return nil
}

// cmdCheckConfig validates a configuration file without starting anything.
func cmdCheckConfig(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", stderr)
	path := fs.String("config", "botbridge.yaml", "configuration `file`")
	online := fs.Bool("online", false, "also check every token and URL against the real services (creates nothing there)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	var bots []string
	for _, b := range cfg.Bots {
		bots = append(bots, b.Name)
	}
	fmt.Fprintf(stdout, "%s: ok (bots: %s; routes: %d)\n", *path, strings.Join(bots, ", "), len(cfg.BridgeRoutes()))
	if !*online {
		return nil
	}
	if !printChecks(stdout, onlineChecks(ctx, cfg)) {
		return errors.New("some checks failed; see above")
	}
	return nil
}
