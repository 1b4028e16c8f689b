package store

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/btcsuite/btclog/v2"
)

// Subsystem is the logging tag of the store, so operators can set its level
// apart from the daemons that use it.
const Subsystem = "STOR"

// log is the package logger; it stays silent until the daemon hands one in.
var log btclog.Logger

func init() {
	UseLogger(btclog.Disabled)
}

// UseLogger lets the daemon route the store's messages (and badger's own) to
// its log backend under the STOR tag; until it is called nothing is printed.
func UseLogger(logger btclog.Logger) {
	log = logger
}

// badgerLogger hands badger's messages to our logger. Badger is chatty at
// info level (every compaction and table), so its info becomes our debug.
//
// Some disk failures badger only logs: a memtable flush that fails (the
// table or the MANIFEST entry cannot be written) is retried every second,
// forever, and once the immutable memtables fill up every write blocks.
// Those messages fail the store (store is set once Open made the DB).
type badgerLogger struct {
	store atomic.Pointer[DB]
}

// badgerFatal are the beginnings of the messages badger logs (at error
// level) for a write it could not make durable and will not report
// otherwise (badger v4 db.go: flushMemtable, handleMemTableFlush,
// writeRequests; memtable.go: openMemTable).
var badgerFatal = []string{
	"error flushing memtable",
	"While trying to flush memtable",
	"writeRequests:",
	"Got error: ",
}

// failsStore tells whether badger's message reports a lost write: one of
// badgerFatal, or anything about a MANIFEST write (badger's record of
// which tables hold the ledger) other than its harmless double delete.
func failsStore(msg string) bool {
	for _, p := range badgerFatal {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	lower := strings.ToLower(msg)
	return strings.Contains(lower, "manifest") &&
		!strings.Contains(lower, "has already been removed")
}

func (l *badgerLogger) Errorf(f string, v ...interface{}) {
	msg := fmt.Sprintf(f, v...)
	if db := l.store.Load(); db != nil && failsStore(msg) {
		// The daemon logs the failure once; keep badger's line too.
		db.fail(fmt.Errorf("badger: %s", strings.TrimSpace(msg)))
	}
	log.Errorf("badger: %s", msg)
}

func (l *badgerLogger) Warningf(f string, v ...interface{}) {
	msg := fmt.Sprintf(f, v...)
	if db := l.store.Load(); db != nil && failsStore(msg) {
		db.fail(fmt.Errorf("badger: %s", strings.TrimSpace(msg)))
	}
	log.Warnf("badger: %s", msg)
}

func (*badgerLogger) Infof(f string, v ...interface{})  { log.Debugf("badger: "+f, v...) }
func (*badgerLogger) Debugf(f string, v ...interface{}) { log.Tracef("badger: "+f, v...) }
