package common

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/btcsuite/btclog/v2"
)

// LogManager hands out one logger per subsystem (lnd's style: a short tag
// such as RCVR or STOR on every line) and sets their levels from a spec
// like "info" or "info,RCVR=debug,STOR=warn".
type LogManager struct {
	handler *btclog.DefaultHandler

	mu      sync.Mutex
	loggers map[string]btclog.Logger
}

// NewLogManager writes every subsystem's lines to w.
func NewLogManager(w io.Writer) *LogManager {
	return &LogManager{
		handler: btclog.NewDefaultHandler(w),
		loggers: map[string]btclog.Logger{},
	}
}

// Logger returns the logger of a subsystem, creating it at info level.
func (m *LogManager) Logger(tag string) btclog.Logger {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.loggers[tag]; ok {
		return l
	}
	l := btclog.NewSLogger(m.handler.SubSystem(tag))
	l.SetLevel(btclog.LevelInfo)
	m.loggers[tag] = l
	return l
}

// Subsystems lists the tags handed out so far, sorted.
func (m *LogManager) Subsystems() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	tags := make([]string, 0, len(m.loggers))
	for t := range m.loggers {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	return tags
}

// SetLevels applies a level spec: a bare level sets every subsystem,
// TAG=level sets one. Unknown levels or tags are an error naming them.
func (m *LogManager) SetLevels(spec string) error {
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		tag, lvl, hasTag := strings.Cut(part, "=")
		if !hasTag {
			lvl, tag = tag, ""
		}
		level, ok := btclog.LevelFromString(lvl)
		if !ok {
			return fmt.Errorf("debuglevel: unknown level %q (use "+
				"trace, debug, info, warn, error, critical or "+
				"off)", lvl)
		}
		m.mu.Lock()
		if tag == "" {
			for _, l := range m.loggers {
				l.SetLevel(level)
			}
			m.mu.Unlock()
			continue
		}
		l, ok := m.loggers[tag]
		m.mu.Unlock()
		if !ok {
			return fmt.Errorf("debuglevel: unknown subsystem %q "+
				"(known: %s)", tag,
				strings.Join(m.Subsystems(), ", "))
		}
		l.SetLevel(level)
	}
	return nil
}

// pkgLog is the logger of this package's own messages (certificate
// renewal); daemons set it with UseLogger.
var pkgLog atomic.Pointer[btclog.Logger]

// UseLogger sets the logger of package common's own messages.
func UseLogger(l btclog.Logger) { pkgLog.Store(&l) }

// logger returns the package logger, or a disabled one.
func logger() btclog.Logger {
	if l := pkgLog.Load(); l != nil {
		return *l
	}
	return btclog.Disabled
}

// ShowSubsystems is the --debuglevel value that lists the subsystems and
// exits, as in lnd.
const ShowSubsystems = "show"

// PrintSubsystems writes the --debuglevel=show answer.
func PrintSubsystems(w io.Writer, tags []string) {
	sorted := append([]string(nil), tags...)
	sort.Strings(sorted)
	fmt.Fprintf(w, "Supported subsystems: %s\nSet one with "+
		"--debuglevel=<level>,<SUBSYSTEM>=<level>, e.g. "+
		"--debuglevel=info,%s=debug\n", strings.Join(sorted, " "),
		sorted[0])
}
