package store

import (
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
type badgerLogger struct{}

func (badgerLogger) Errorf(f string, v ...interface{})   { log.Errorf("badger: "+f, v...) }
func (badgerLogger) Warningf(f string, v ...interface{}) { log.Warnf("badger: "+f, v...) }
func (badgerLogger) Infof(f string, v ...interface{})    { log.Debugf("badger: "+f, v...) }
func (badgerLogger) Debugf(f string, v ...interface{})   { log.Tracef("badger: "+f, v...) }
