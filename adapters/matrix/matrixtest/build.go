package matrixtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// DendriteVersion is the Dendrite release the harness builds and runs.
const DendriteVersion = "v0.15.2"

const dendriteModule = "github.com/element-hq/dendrite"

// binaryNames are the Dendrite commands the harness needs, each built from
// dendriteModule/cmd/<name>.
var binaryNames = [...]string{"dendrite", "generate-keys", "generate-config"}

// Binaries returns the directory holding the dendrite, generate-keys and
// generate-config binaries of DendriteVersion, building them on first use.
//
// The directory is $BOTBRIDGE_CACHE/dendrite-<version>, or
// <os.UserCacheDir>/botbridge/dendrite-<version> when BOTBRIDGE_CACHE is unset,
// so the slow build (about two minutes, through the Go module proxy, without
// cgo) happens once per machine. A file lock lets parallel test binaries share
// one build, and the binaries appear in the directory all at once, so nobody
// runs a half-written file. Progress goes to stderr. Binaries blocks until the
// binaries exist or ctx ends.
func Binaries(ctx context.Context) (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", fmt.Errorf("dendrite binaries: %w", err)
	}
	dir := filepath.Join(root, "dendrite-"+DendriteVersion)
	if haveBinaries(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("dendrite binaries: %w", err)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", fmt.Errorf("dendrite binaries: lock: %w", err)
	}
	defer unlock()
	// Another process may have finished the build while we waited for the lock.
	if haveBinaries(dir) {
		return dir, nil
	}
	if err := build(ctx, root, dir); err != nil {
		return "", fmt.Errorf("build dendrite %s: %w", DendriteVersion, err)
	}
	return dir, nil
}

func cacheRoot() (string, error) {
	if dir := os.Getenv("BOTBRIDGE_CACHE"); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "botbridge"), nil
}

func haveBinaries(dir string) bool {
	for _, name := range binaryNames {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// build compiles the binaries in a scratch module under root and renames the
// finished bin directory to dir. The caller holds the lock.
func build(ctx context.Context, root, dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go toolchain not found in PATH: %w", err)
	}
	// Scratch dirs left by builders that died half-way: any live builder of
	// this version would hold the lock we hold.
	stale, _ := filepath.Glob(filepath.Join(root, "dendrite-"+DendriteVersion+".build-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	tmp, err := os.MkdirTemp(root, "dendrite-"+DendriteVersion+".build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src, bin := filepath.Join(tmp, "src"), filepath.Join(tmp, "bin")
	if err := os.Mkdir(src, 0o755); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "matrixtest: building dendrite %s into %s (first run, ~2 min)…\n", DendriteVersion, dir)
	start := time.Now()

	var pkgs, versioned []string
	for _, name := range binaryNames {
		pkg := dendriteModule + "/cmd/" + name
		pkgs = append(pkgs, pkg)
		versioned = append(versioned, pkg+"@"+DendriteVersion)
	}
	// `go install pkg@version` is refused by the proxy for this module, and
	// `go get` of the module alone leaves the commands' go.sum entries out,
	// so the commands themselves are added to a scratch module.
	steps := [][]string{
		{"mod", "init", "matrixtest/dendrite"},
		append([]string{"get"}, versioned...),
		append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...),
	}
	env := append(os.Environ(),
		"CGO_ENABLED=0",    // Dendrite then uses modernc.org/sqlite: no C toolchain needed
		"GOWORK=off",       // a caller's workspace must not leak into the scratch module
		"GOFLAGS=-mod=mod", // nor a caller's -modfile or -mod=vendor
	)
	for _, args := range steps {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = src
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", args[0], err, tail(out, 4096))
		}
	}
	// A leftover from an interrupted manual copy would make the rename fail;
	// we hold the lock, so nobody is reading it.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Rename(bin, dir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "matrixtest: built dendrite %s in %s\n", DendriteVersion, time.Since(start).Round(time.Second))
	return nil
}

// tail returns at most the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
