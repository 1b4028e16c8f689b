// Package bins builds the lnd, lncli, btcd and btcctl binaries that the
// integration tests and the demo run, from pinned Go module versions, into a
// cache directory outside git keyed by version, and reuses them afterwards.
//
// lnd can't be built with `go install pkg@version` because its go.mod carries
// replace directives, so lnd and lncli are built from this module, whose
// go.mod requires lnd at the pinned version and repeats lnd's replaces. btcd
// has no replaces and is installed at BtcdVersion directly.
package bins

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// LndModule is the module lnd and lncli are built from; its version
	// comes from this project's go.mod.
	LndModule = "github.com/lightningnetwork/lnd"

	// BtcdVersion is the btcd release the test network runs. It is pinned
	// here rather than in go.mod because btcd v0.26 split into v2
	// modules that lnd v0.21 does not use.
	BtcdVersion = "v0.26.2"

	// CacheEnv overrides the cache directory.
	CacheEnv = "SATSTREAM_BIN_CACHE"
)

// LndBuildTags are the tags lnd is built with: the RPC sub-servers
// lndclient and our daemons use, dev (for --dev.* test flags such as
// unsafe disconnect) and integration (cheap wallet key derivation, which
// makes wallet creation about ten times faster).
var LndBuildTags = []string{
	"signrpc", "walletrpc", "chainrpc", "invoicesrpc", "routerrpc",
	"peersrpc", "dev", "integration",
}

// ErrNoModule is returned when the builder can't find this project's go.mod,
// which it needs to build lnd at the pinned version.
var ErrNoModule = errors.New("satstream module not found")

// Paths are the absolute paths of the four binaries.
type Paths struct {
	Lnd    string
	Lncli  string
	Btcd   string
	Btcctl string

	// LndVersion is the lnd module version the binaries were built from.
	LndVersion string
}

// Ensure returns the cached binaries, building whichever are missing. It
// prints progress to w (the cold lnd build takes about ten minutes on two
// cores). Concurrent callers, even in other processes, wait on a file lock
// instead of building twice.
func Ensure(ctx context.Context, w io.Writer) (*Paths, error) {
	if w == nil {
		w = io.Discard
	}

	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	lndVersion, err := goOutput(
		ctx, root, "list", "-m", "-f", "{{.Version}}", LndModule,
	)
	if err != nil {
		return nil, fmt.Errorf("read lnd version from go.mod: %w", err)
	}
	goVersion := runtime.Version()
	if v, err := goOutput(ctx, root, "env", "GOVERSION"); err == nil {
		goVersion = v
	}

	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("create bin cache %s: %w", cache, err)
	}

	unlock, err := lockFile(ctx, filepath.Join(cache, ".lock"), w)
	if err != nil {
		return nil, err
	}
	defer unlock()

	lndDir := filepath.Join(cache, fmt.Sprintf("lnd-%s-%s-%s",
		lndVersion, goVersion, tagsKey()))
	btcdDir := filepath.Join(cache, fmt.Sprintf("btcd-%s-%s",
		BtcdVersion, goVersion))

	p := &Paths{
		Lnd:        filepath.Join(lndDir, "lnd"),
		Lncli:      filepath.Join(lndDir, "lncli"),
		Btcd:       filepath.Join(btcdDir, "btcd"),
		Btcctl:     filepath.Join(btcdDir, "btcctl"),
		LndVersion: lndVersion,
	}

	err = ensureDir(ctx, w, lndDir, "lnd "+lndVersion, func(tmp string) error {
		for _, cmd := range []string{"lnd", "lncli"} {
			pkg := LndModule + "/cmd/" + cmd
			total := countDeps(ctx, root, pkg, strings.Join(
				LndBuildTags, " "))
			err := goBuild(ctx, w, root, cmd, total, []string{
				"build", "-v",
				"-tags", strings.Join(LndBuildTags, " "),
				"-o", filepath.Join(tmp, cmd),
				LndModule + "/cmd/" + cmd,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = ensureDir(ctx, w, btcdDir, "btcd "+BtcdVersion, func(tmp string) error {
		// go install pkg@version ignores the current module; run it
		// from the cache so no go.work or go.mod interferes.
		return goBuild(ctx, w, cache, "btcd", 0, []string{
			"install", "-v",
			"github.com/btcsuite/btcd@" + BtcdVersion,
			"github.com/btcsuite/btcd/cmd/btcctl@" + BtcdVersion,
		}, "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=-mod=mod")
	})
	if err != nil {
		return nil, err
	}

	return p, nil
}

// CacheDir is where built binaries live: $SATSTREAM_BIN_CACHE, else the
// user cache directory (~/.cache/satstream/bin on Linux).
func CacheDir() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return filepath.Abs(dir)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory (set %s): %w",
			CacheEnv, err)
	}
	return filepath.Join(base, "satstream", "bin"), nil
}

// ensureDir builds into a temporary directory and renames it into place,
// so an interrupted build never leaves a half-built cache entry.
func ensureDir(ctx context.Context, w io.Writer, dir, what string,
	build func(tmp string) error) error {

	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		fmt.Fprintf(w, "bins: using cached %s from %s\n", what, dir)
		return nil
	}

	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}

	start := time.Now()
	fmt.Fprintf(w, "bins: building %s into %s (a cold lnd build takes "+
		"about 10 minutes on 2 cores)\n", what, dir)
	if err := build(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("build %s: %w", what, err)
	}
	err := os.WriteFile(filepath.Join(tmp, ".complete"),
		[]byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	if err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move %s into place: %w", what, err)
	}
	fmt.Fprintf(w, "bins: built %s in %s\n", what,
		time.Since(start).Round(time.Second))
	return nil
}

// countDeps counts the packages outside the standard library that
// building pkg compiles at most, for "N of M" progress; 0 if go list
// fails (the progress line then shows N alone).
func countDeps(ctx context.Context, dir, pkg, tags string) int {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-tags", tags,
		"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// progress is the "N of M packages" part of a progress line; N is what
// go build -v printed (only packages not already in Go's build cache are
// compiled and printed, so N can end below M).
func progress(n int64, total int) string {
	if total <= 0 {
		return fmt.Sprintf("%d packages compiled", n)
	}
	return fmt.Sprintf("%d of at most %d packages compiled", min(n,
		int64(total)), total)
}

// goBuild runs the go command, counting the packages it compiles (from -v)
// and printing a progress line every 15 seconds; total is how many it may
// compile (0 if unknown).
func goBuild(ctx context.Context, w io.Writer, dir, what string, total int,
	args []string, env ...string) error {

	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw

	var (
		pkgs atomic.Int64
		tail = make([]string, 0, 40)
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			pkgs.Add(1)
			if len(tail) == cap(tail) {
				tail = tail[1:]
			}
			tail = append(tail, line)
		}
	}()

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start go %s: %w", args[0], err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait(); _ = pw.Close() }()

	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-waitErr:
			<-done
			if err != nil {
				return fmt.Errorf("go %s %s: %w\n%s", args[0],
					what, err, strings.Join(tail, "\n"))
			}
			return nil
		case <-tick.C:
			fmt.Fprintf(w, "bins:   %s: %s, %s elapsed\n", what,
				progress(pkgs.Load(), total),
				time.Since(start).Round(time.Second))
		}
	}
}

// moduleRoot finds the directory of this project's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := goOutput(ctx, "", "env", "GOMOD")
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%w: run from inside the satstream "+
			"checkout (go env GOMOD gave %q)", ErrNoModule, gomod)
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoModule, err)
	}
	if !strings.Contains(string(data), "module github.com/satstream/satstream") {
		return "", fmt.Errorf("%w: %s is another module", ErrNoModule,
			gomod)
	}
	return filepath.Dir(gomod), nil
}

func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go %s: %w: %s",
				strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func tagsKey() string {
	sum := sha256.Sum256([]byte(strings.Join(LndBuildTags, ",")))
	return hex.EncodeToString(sum[:4])
}

// lockFile takes an exclusive flock, telling the user when it has to wait
// for another build.
func lockFile(ctx context.Context, path string, w io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	if syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		fmt.Fprintf(w, "bins: waiting for another build holding %s\n",
			path)
		locked := make(chan error, 1)
		go func() { locked <- syscall.Flock(fd, syscall.LOCK_EX) }()
		select {
		case err := <-locked:
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		}
	}
	return func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, nil
}
