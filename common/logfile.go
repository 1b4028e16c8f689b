package common

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/lightningnetwork/lnd/build"
)

// LogConfig holds lnd's log file options: satstream writes every line to
// stdout, as before, and to a rotating file in the data directory.
type LogConfig struct {
	LogDir         string `long:"logdir" description:"Directory of the rotating log file (default <datadir>/<network>/logs)"`
	MaxLogFiles    int    `long:"maxlogfiles" description:"Rotated log files to keep (0 keeps all; -1 writes no log file)"`
	MaxLogFileSize int    `long:"maxlogfilesize" description:"Size in MB at which the log file is rotated"`
	Compressor     string `long:"logcompressor" description:"Compression of rotated log files: gzip, or none to keep them plain" choice:"gzip" choice:"none"`

	// rollBytes, if set, replaces MaxLogFileSize (tests).
	rollBytes int64
}

// Log compressors: gzip, as lnd's default, or none.
const (
	LogCompressGzip = "gzip"
	LogCompressNone = "none"
)

// DefaultLogConfig holds lnd's defaults.
func DefaultLogConfig() LogConfig {
	return LogConfig{
		MaxLogFiles:    build.DefaultMaxLogFiles,
		MaxLogFileSize: build.DefaultMaxLogFileSize,
		Compressor:     LogCompressGzip,
	}
}

// Resolve fills the default log directory from the network's data
// directory and checks the numbers, naming the option.
func (c *LogConfig) Resolve(networkDir string) error {
	if c.LogDir == "" {
		c.LogDir = filepath.Join(networkDir, "logs")
	}
	c.LogDir = ExpandHome(c.LogDir)
	if c.MaxLogFiles < -1 {
		return fmt.Errorf("--maxlogfiles=%d: use -1 (no file), 0 (keep "+
			"all) or a positive number", c.MaxLogFiles)
	}
	if c.MaxLogFileSize < 1 {
		return fmt.Errorf("--maxlogfilesize=%d: must be at least 1 (MB)",
			c.MaxLogFileSize)
	}
	switch c.Compressor {
	case "":
		c.Compressor = LogCompressGzip
	case LogCompressGzip, LogCompressNone:
	default:
		return fmt.Errorf("--logcompressor=%q: use %s or %s",
			c.Compressor, LogCompressGzip, LogCompressNone)
	}
	return nil
}

// gzSuffix is the file suffix of a gzip-compressed roll, as lnd's.
const gzSuffix = "gz"

// Open starts a rotating log file on <logdir>/<name> and returns a writer
// that sends every line to stdout and to the file, and the closer of the
// file. At --maxlogfilesize the file is renamed to <name>.<n> (n one more
// than the newest roll) and, by default, gzip-compressed to <name>.<n>.gz
// in the background, as lnd does; at most --maxlogfiles rolls are kept.
// With --maxlogfiles=-1 it is stdout alone.
//
// This is jrick/logrotate's scheme (what lnd's build package wraps),
// written here: lnd's RotatingLogWriter starts the rotator's reader
// goroutine, which races with Write (go test -race reports it), and the
// rotator's own pruning deletes only the names of the current compression
// setting and stops at the first one missing, so a roll left plain by a
// crash mid-compression, or rolls written under the other setting, stayed
// for ever, and it numbered new rolls ignoring the other setting's. Open
// also tidies what a previous run left: it compresses plain rolls and
// drops a crash's partial archive.
func (c *LogConfig) Open(stdout io.Writer, name string) (io.Writer,
	func() error, error) {

	if c.MaxLogFiles < 0 {
		return stdout, func() error { return nil }, nil
	}
	if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	w := &rotatingWriter{stdout: stdout,
		path: filepath.Join(c.LogDir, name), keep: c.MaxLogFiles,
		compress:  c.Compressor != LogCompressNone,
		threshold: int64(c.MaxLogFileSize) << 20}
	if c.rollBytes > 0 {
		w.threshold = c.rollBytes
	}
	if err := w.tidy(); err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	if err := w.open(); err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	return w, w.close, nil
}

// rotatingWriter serialises writes from every subsystem's logger to
// stdout and the log file, and rotates the file.
type rotatingWriter struct {
	mu     sync.Mutex
	stdout io.Writer
	path   string
	f      *os.File
	size   int64
	closed bool

	threshold int64
	keep      int
	compress  bool

	// filesMu orders pruning against a compression's last step, so a
	// roll pruned while it was compressed does not come back.
	filesMu sync.Mutex
	// zmu runs one compression at a time; wg tracks them for close.
	zmu sync.Mutex
	wg  sync.WaitGroup
}

func (w *rotatingWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY,
		0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Write sends p to stdout and the file, and rotates the file after a
// line that brings it to the threshold.
func (w *rotatingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// stdout first, as io.MultiWriter did; a failing stdout stops the
	// line as before.
	if _, err := w.stdout.Write(p); err != nil {
		return 0, err
	}
	if w.closed {
		return len(p), nil
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, err
	}
	if w.size >= w.threshold && len(p) > 0 && p[len(p)-1] == '\n' {
		if err := w.rotate(); err != nil {
			return n, fmt.Errorf("rotate %s: %w", w.path, err)
		}
	}
	return n, nil
}

// rotate renames the live file to the next roll, starts a new one, prunes
// and compresses the roll in the background. Called with mu held.
func (w *rotatingWriter) rotate() error {
	rolls, err := listRolls(w.path)
	if err != nil {
		return err
	}
	next := 1
	if len(rolls) > 0 {
		next = rolls[len(rolls)-1].n + 1
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	roll := rollName(w.path, next, false)
	renameErr := os.Rename(w.path, roll)
	// Keep logging even if the rename failed (to the same file).
	if err := w.open(); err != nil {
		w.closed = true
		return err
	}
	if renameErr != nil {
		return renameErr
	}
	if err := w.prune(); err != nil {
		return err
	}
	if !w.compress {
		return nil
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.zmu.Lock()
		defer w.zmu.Unlock()
		if err := w.gzip(roll); err != nil {
			logger().Warnf("compressing %s: %v", roll, err)
		}
	}()
	return nil
}

// close closes the file and waits for compressions in flight.
func (w *rotatingWriter) close() error {
	w.mu.Lock()
	var err error
	if !w.closed {
		w.closed = true
		err = w.f.Close()
	}
	w.mu.Unlock()
	w.wg.Wait()
	if perr := w.prune(); err == nil {
		err = perr
	}
	return err
}

// prune removes every file of all but the newest keep rolls (0 keeps
// all). A roll being compressed has both forms for a moment; they count
// once.
func (w *rotatingWriter) prune() error {
	w.filesMu.Lock()
	defer w.filesMu.Unlock()
	if w.keep <= 0 {
		return nil
	}
	rolls, err := listRolls(w.path)
	if err != nil || len(rolls) <= w.keep {
		return err
	}
	for _, r := range rolls[:len(rolls)-w.keep] {
		for _, gz := range []bool{false, true} {
			err := os.Remove(rollName(w.path, r.n, gz))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// tidy prunes what a previous run left, removes a crash's partial
// archives and, with compression on, compresses its plain rolls (a crash
// mid-compression leaves the plain roll whole).
func (w *rotatingWriter) tidy() error {
	dir := filepath.Dir(w.path)
	prefix := filepath.Base(w.path) + "."
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) &&
			strings.HasSuffix(e.Name(), tmpSuffix) {

			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := w.prune(); err != nil {
		return err
	}
	if !w.compress {
		return nil
	}
	rolls, err := listRolls(w.path)
	if err != nil {
		return err
	}
	for _, r := range rolls {
		if r.plain {
			if err := w.gzip(rollName(w.path, r.n, false)); err != nil {
				return err
			}
		}
	}
	return nil
}

// tmpSuffix marks an archive being written.
const tmpSuffix = ".tmp"

// gzip compresses the roll src to src.gz (replacing a partial one) and
// removes src, unless src was pruned meanwhile.
func (w *rotatingWriter) gzip(src string) (err error) {
	dst := src + "." + gzSuffix
	tmp := dst + tmpSuffix
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	w.filesMu.Lock()
	defer w.filesMu.Unlock()
	if _, err := os.Stat(src); err != nil {
		// Pruned while compressed: not brought back.
		_ = os.Remove(tmp)
		return nil
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

// logRoll is one rotated log file: <name>.<n>, or <name>.<n>.gz.
type logRoll struct {
	n         int
	plain, gz bool
}

// listRolls finds the rolls of the log file path, by number, oldest
// first.
func listRolls(path string) ([]logRoll, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	prefix := filepath.Base(path) + "."
	byNum := map[int]*logRoll{}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || e.IsDir() {
			continue
		}
		num, isGz := strings.CutSuffix(rest, "."+gzSuffix)
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			continue
		}
		r := byNum[n]
		if r == nil {
			r = &logRoll{n: n}
			byNum[n] = r
		}
		if isGz {
			r.gz = true
		} else {
			r.plain = true
		}
	}
	rolls := make([]logRoll, 0, len(byNum))
	for _, r := range byNum {
		rolls = append(rolls, *r)
	}
	sort.Slice(rolls, func(i, j int) bool { return rolls[i].n < rolls[j].n })
	return rolls, nil
}

// rollName is the file of roll n, compressed or not.
func rollName(path string, n int, gz bool) string {
	if gz {
		return fmt.Sprintf("%s.%d.%s", path, n, gzSuffix)
	}
	return fmt.Sprintf("%s.%d", path, n)
}

// MetricsConfig is the "metrics." option group of both daemons.
type MetricsConfig struct {
	Listen string `long:"listen" description:"host:port of the plain-HTTP Prometheus /metrics endpoint; empty disables it"`
}

// Validate checks the listen address, naming the option.
func (c *MetricsConfig) Validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--metrics.listen=%q: %v", c.Listen, err)
	}
	return nil
}
