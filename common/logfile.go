package common

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/jrick/logrotate/rotator"
	"github.com/lightningnetwork/lnd/build"
)

// LogConfig holds lnd's log file options: satstream writes every line to
// stdout, as before, and to a rotating file in the data directory.
type LogConfig struct {
	LogDir         string `long:"logdir" description:"Directory of the rotating log file (default <datadir>/<network>/logs)"`
	MaxLogFiles    int    `long:"maxlogfiles" description:"Rotated log files to keep (0 keeps all; -1 writes no log file)"`
	MaxLogFileSize int    `long:"maxlogfilesize" description:"Size in MB at which the log file is rotated"`
}

// DefaultLogConfig holds lnd's defaults.
func DefaultLogConfig() LogConfig {
	return LogConfig{
		MaxLogFiles:    build.DefaultMaxLogFiles,
		MaxLogFileSize: build.DefaultMaxLogFileSize,
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
	return nil
}

// Open starts a rotating log file on <logdir>/<name> and returns a writer
// that sends every line to stdout and to the file, and the closer of the
// file. The rotator is the one lnd's build package wraps
// (jrick/logrotate, gzip-compressed rolls), used as a plain writer: lnd's
// RotatingLogWriter also starts the rotator's reader goroutine, which
// races with Write (go test -race reports it). With --maxlogfiles=-1 it is
// stdout alone.
func (c *LogConfig) Open(stdout io.Writer, name string) (io.Writer,
	func() error, error) {

	if c.MaxLogFiles < 0 {
		return stdout, func() error { return nil }, nil
	}
	if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	rot, err := rotator.New(filepath.Join(c.LogDir, name),
		int64(c.MaxLogFileSize)*1024, false, c.MaxLogFiles)
	if err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	rot.SetCompressor(gzip.NewWriter(nil), ".gz")
	w := &lockedWriter{w: io.MultiWriter(stdout, rot)}
	return w, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		return rot.Close()
	}, nil
}

// lockedWriter serialises writes from every subsystem's logger.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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
