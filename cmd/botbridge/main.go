// Command botbridge puts a Botpress bot into Slack channels and Matrix rooms.
//
//	botbridge run -config FILE       the service
//	botbridge demo                   try it in the terminal, with a built-in emulated bot
//	botbridge emulator               a standalone Botpress Chat API emulator
//	botbridge check-config -config FILE
//	botbridge migrate-store -from sqlite:FILE -to postgres:DSN
//	botbridge status -config FILE
//	botbridge version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitUsage is the exit code for a command line that cannot be run.
const exitUsage = 2

// errUsage marks an error in the command line; it exits with exitUsage.
var errUsage = errors.New("usage")

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	cmds := map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) error{
		"run":           cmdRun,
		"demo":          cmdDemo,
		"emulator":      cmdEmulator,
		"check-config":  cmdCheckConfig,
		"migrate-store": cmdMigrateStore,
		"status":        cmdStatus,
		"version":       cmdVersion,
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "botbridge: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	err := cmd(ctx, args[1:], stdin, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "botbridge %s: %v\n", name, err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "botbridge %s: %v\n", name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `botbridge puts a Botpress bot into Slack channels and Matrix rooms.

Usage:
  botbridge run -config FILE          run the service
  botbridge demo [-data DIR]          talk to a built-in demo bot in the terminal
                 [-url URL -webhook-id ID -encryption-key KEY]   ... or to a real Botpress bot
  botbridge emulator [-addr HOST:PORT] a standalone Botpress Chat API emulator
  botbridge check-config -config FILE check a configuration file
  botbridge migrate-store -from sqlite:FILE -to postgres:DSN
                                      copy a stopped SQLite store into an empty PostgreSQL database
  botbridge status -config FILE       the replicas sharing the store, what each holds, and
                                      what waits to be sent or posted
  botbridge version                   print the version

Run "botbridge COMMAND -h" for the flags of a command.
`)
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("botbridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and refuses stray arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func cmdVersion(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if err := parseFlags(newFlags("version", stderr), args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "botbridge", versionString())
	return nil
}

// versionString is the version with the commit it was built from, when the
// build recorded one.
func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev
		if modified == "true" {
			v += ", modified"
		}
		v += ")"
	}
	return v + " " + info.GoVersion
}

// newLogger builds the process's logger on w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
