package common

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

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

// Open starts lnd's rotating log writer on <logdir>/<name> and returns a
// writer that sends every line to stdout and to the file, and the closer
// of the file. With --maxlogfiles=-1 it is stdout alone.
func (c *LogConfig) Open(stdout io.Writer, name string) (io.Writer,
	func() error, error) {

	if c.MaxLogFiles < 0 {
		return stdout, func() error { return nil }, nil
	}
	if err := os.MkdirAll(c.LogDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	rot := build.NewRotatingLogWriter()
	fc := build.DefaultLogConfig().File
	fc.MaxLogFiles = c.MaxLogFiles
	fc.MaxLogFileSize = c.MaxLogFileSize
	if err := rot.InitLogRotator(fc, filepath.Join(c.LogDir, name)); err != nil {
		return nil, nil, fmt.Errorf("--logdir: %w", err)
	}
	return io.MultiWriter(stdout, rot), rot.Close, nil
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
