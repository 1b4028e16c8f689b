package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Durability says when an Update is acknowledged.
type Durability uint8

const (
	// GroupCommit acknowledges an Update once an fsync that started after
	// its commit has finished; concurrent Updates share one fsync. This is
	// the default and the only mode a daemon should use.
	GroupCommit Durability = iota

	// SyncEachWrite lets badger fsync every commit by itself (SyncWrites).
	// It is as durable as GroupCommit but slower under load; it exists to
	// be measured against.
	SyncEachWrite
)

// Options tune a store. The zero value is not ready to use: start from
// DefaultOptions.
type Options struct {
	// InMemory keeps everything in RAM (for unit tests of the daemons);
	// nothing survives Close and the directory is ignored.
	InMemory bool

	// Durability selects group commit (default) or badger's SyncWrites.
	Durability Durability

	// GCInterval is how often the value log is garbage collected; zero or
	// less disables the background collector.
	GCInterval time.Duration

	// GCDiscardRatio is the share of stale data that makes a value log file
	// worth rewriting.
	GCDiscardRatio float64

	// MaxConflictRetries bounds how often an Update is re-run after a
	// badger transaction conflict.
	MaxConflictRetries int

	// MemTableSize bounds the write-ahead log replayed at open; the ledger's
	// records are small, so badger's 64 MiB default only slows restarts.
	MemTableSize int64

	// ValueLogFileSize is the size at which value log files rotate; smaller
	// files let GC reclaim space sooner.
	ValueLogFileSize int64

	// BlockCacheSize is badger's block cache in bytes.
	BlockCacheSize int64

	// MaxCommitDelay is how long a group-commit fsync may wait for steps
	// that are still committing to join it; zero syncs at once. It only
	// applies when other steps are running, so a lone writer never waits.
	MaxCommitDelay time.Duration

	// FaultHook is for tests only; daemons leave it nil. When set, the
	// store calls it at each FaultPoint, and an error it returns is treated
	// as that operation failing on disk.
	FaultHook func(FaultPoint) error
}

// FaultPoint names a place where a test can make the store's disk fail.
type FaultPoint string

const (
	// FaultSync is just before a group-commit fsync.
	FaultSync FaultPoint = "sync"

	// FaultCommit is just after badger committed a step, before the step
	// counts as written: a failure here leaves the step visible in memory
	// but not acknowledged, as a failed badger write can.
	FaultCommit FaultPoint = "commit"
)

// failedCloseTimeout bounds Close after a failure: badger flushes its
// memtables on close and retries a failing flush forever, which must not
// keep a daemon with a broken disk from exiting.
const failedCloseTimeout = 10 * time.Second

// fault runs the test hook at p, if there is one.
func (o Options) fault(p FaultPoint) error {
	if o.FaultHook == nil {
		return nil
	}
	return o.FaultHook(p)
}

// DefaultOptions are the settings the daemons run with.
func DefaultOptions() Options {
	return Options{
		Durability:         GroupCommit,
		GCInterval:         10 * time.Minute,
		GCDiscardRatio:     0.5,
		MaxConflictRetries: 16,
		MemTableSize:       16 << 20,
		ValueLogFileSize:   64 << 20,
		BlockCacheSize:     32 << 20,
		MaxCommitDelay:     2 * time.Millisecond,
	}
}

// validate turns a bad option into one clear error naming it.
func (o Options) validate() error {
	switch {
	case o.Durability != GroupCommit && o.Durability != SyncEachWrite:
		return fmt.Errorf("store: unknown durability %d", o.Durability)
	case o.GCInterval > 0 && (o.GCDiscardRatio <= 0 || o.GCDiscardRatio >= 1):
		return fmt.Errorf("store: GCDiscardRatio %v must be in (0, 1)", o.GCDiscardRatio)
	case o.MaxConflictRetries < 0:
		return fmt.Errorf("store: MaxConflictRetries %d must not be negative",
			o.MaxConflictRetries)
	case o.MemTableSize < 1<<20:
		return fmt.Errorf("store: MemTableSize %d must be at least 1 MiB", o.MemTableSize)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return fmt.Errorf("store: ValueLogFileSize %d must be in [1 MiB, 2 GiB)",
			o.ValueLogFileSize)
	case o.MaxCommitDelay < 0:
		return fmt.Errorf("store: MaxCommitDelay %v must not be negative",
			o.MaxCommitDelay)
	case o.BlockCacheSize <= 0:
		return fmt.Errorf("store: BlockCacheSize %d must be positive", o.BlockCacheSize)
	}
	return nil
}

// Stats count what the store did, for metrics and benchmarks.
type Stats struct {
	// Commits is the number of Updates that wrote something.
	Commits uint64
	// Syncs is the number of group-commit fsyncs; Commits/Syncs is the
	// batching factor.
	Syncs uint64
}

// DB is an open satstream store: one badger directory holding the ledger of
// one daemon. It is safe for concurrent use.
type DB struct {
	bdb  *badger.DB
	dir  string
	opts Options

	// writeMu serialises read-write transactions. Each step is short
	// (a few reads and writes, no I/O), and running them one at a time
	// means they never conflict: with optimistic retries many payers
	// crediting one hot subscription could starve each other. The fsync,
	// the slow part, happens outside the lock and is shared.
	writeMu sync.Mutex

	syncer *syncer

	// logs syncs badger's logs for the syncer (and for Open).
	logs *logSyncer

	closeMu sync.RWMutex
	closed  bool
	users   sync.WaitGroup

	quit chan struct{}
	bg   sync.WaitGroup

	// failed is closed, and failErr set, when a write or fsync failed.
	failOnce sync.Once
	failed   chan struct{}
	failErr  error

	commits atomic.Uint64

	// committing counts steps between starting and finishing their commit,
	// for the syncer's gathering.
	committing atomic.Int64
}

// Open opens (creating if needed) the store in dir. It fails with ErrLocked
// when another process holds the directory, ErrUnreadable when it is not
// accessible, ErrForeign when it holds something else, ErrCorrupt when
// badger cannot read it and ErrSchemaTooNew when a newer satstream wrote it.
func Open(ctx context.Context, dir string, opts Options) (*DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if !opts.InMemory {
		if err := checkDir(dir); err != nil {
			return nil, err
		}
	}

	bo := badger.DefaultOptions(dir).
		WithInMemory(opts.InMemory).
		WithLogger(badgerLogger{}).
		WithSyncWrites(opts.Durability == SyncEachWrite).
		WithMemTableSize(opts.MemTableSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithNumVersionsToKeep(1).
		WithChecksumVerificationMode(options.OnTableRead).
		WithMetricsEnabled(false)
	if opts.InMemory {
		bo = bo.WithDir("").WithValueDir("")
	}
	// Badger refuses a value threshold above its batch limit (15% of the
	// memtable), which a small MemTableSize would otherwise hit.
	bo = bo.WithValueThreshold(min(bo.ValueThreshold, 15*opts.MemTableSize/100))

	bdb, err := openBadger(bo)
	if err != nil {
		return nil, translateOpenErr(dir, err)
	}

	db := &DB{
		bdb:    bdb,
		dir:    dir,
		opts:   opts,
		logs:   newLogSyncer(dir),
		quit:   make(chan struct{}),
		failed: make(chan struct{}),
	}
	if err := db.checkSchema(); err != nil {
		_ = bdb.Close()
		return nil, err
	}

	syncFn := func() error {
		if err := opts.fault(FaultSync); err != nil {
			return err
		}
		return db.logs.sync()
	}
	db.syncer = newSyncer(syncFn, func() bool { return db.committing.Load() > 0 },
		opts.MaxCommitDelay, db.fail, db.Err, db.quit)
	db.bg.Add(1)
	go func() {
		defer db.bg.Done()
		db.syncer.run()
	}()
	if opts.GCInterval > 0 && !opts.InMemory {
		db.bg.Add(1)
		go func() {
			defer db.bg.Done()
			db.gcLoop()
		}()
	}
	log.Infof("Opened store %s (schema %d, durability %d)", dir, SchemaVersion,
		opts.Durability)
	return db, nil
}

// openBadger opens badger, turning a panic on a damaged directory (badger
// panics on some malformed files) into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("badger panicked while opening: %v", r)
		}
	}()
	return badger.Open(bo)
}

// badgerFile recognises the file names badger creates, so a directory with
// anything else in it is treated as someone else's.
func badgerFile(name string) bool {
	switch name {
	case "LOCK", "MANIFEST", "MANIFEST-REWRITE", "KEYREGISTRY",
		"REWRITE-KEYREGISTRY", "DISCARD":
		return true
	}
	for _, ext := range []string{".sst", ".vlog", ".mem"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// checkDir creates a missing directory and refuses one that is unreadable
// or holds files that are not badger's, before badger writes anything.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%w: create %s: %v", ErrUnreadable, dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%w: %v", ErrUnreadable, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is a file, not a directory", ErrForeign, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrUnreadable, dir, err)
	}
	hasManifest, hasData := false, false
	for _, e := range entries {
		name := e.Name()
		if !badgerFile(name) || e.IsDir() {
			return fmt.Errorf("%w: %s contains %q, which badger did not write; "+
				"point the store at an empty or satstream directory",
				ErrForeign, dir, name)
		}
		switch {
		case name == "MANIFEST":
			hasManifest = true
		case name != "LOCK":
			hasData = true
		}
	}
	if hasData && !hasManifest {
		return fmt.Errorf("%w: %s holds badger files but no MANIFEST", ErrCorrupt, dir)
	}
	return nil
}

// translateOpenErr maps badger's open errors (which are flattened strings,
// not wrapped errors) to our sentinels with a message an operator can act on.
func translateOpenErr(dir string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock") ||
		errors.Is(err, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: %s is in use (is another satstream daemon "+
			"running on it?): %v", ErrLocked, dir, err)
	case errors.Is(err, fs.ErrPermission) ||
		strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w: %s: %v", ErrUnreadable, dir, err)
	case strings.Contains(msg, "no space left"):
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	return fmt.Errorf("%w: badger cannot open %s (restore from a backup?): %v",
		ErrCorrupt, dir, err)
}

// enter registers a user so Close can wait for it; it fails after Close
// and, with the failure, once the store failed.
func (db *DB) enter() error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	if err := db.Err(); err != nil {
		return err
	}
	db.users.Add(1)
	return nil
}

// Failed is closed when the store fails: a badger write or a group-commit
// fsync returned an error. From then on every operation returns Err; the
// daemon should stop, and a restart re-reads the ledger from disk.
func (db *DB) Failed() <-chan struct{} { return db.failed }

// Err returns the failure (wrapping ErrFailed and its cause) once Failed
// is closed, and nil before.
func (db *DB) Err() error {
	select {
	case <-db.failed:
		return db.failErr
	default:
		return nil
	}
}

// fail puts the store into its failed state for cause (the first cause
// wins) and returns the error every operation now gets.
func (db *DB) fail(cause error) error {
	db.failOnce.Do(func() {
		db.failErr = fmt.Errorf("%w: %w", ErrFailed, cause)
		// The owner (the daemon, watching Failed) reports it once;
		// every operation from now on returns it.
		log.Debugf("Store %s failed, refusing every further operation: %v",
			db.dir, cause)
		close(db.failed)
	})
	return db.failErr
}

// writeFailed tells a failed badger commit (the write or its log is
// broken) from the refusals that leave nothing behind: a conflict, a
// transaction too big, a closing database.
func writeFailed(err error) bool {
	return err != nil && !errors.Is(err, badger.ErrConflict) &&
		!errors.Is(err, badger.ErrTxnTooBig) &&
		!errors.Is(err, badger.ErrDBClosed) &&
		!errors.Is(err, badger.ErrBlockedWrites)
}

// Close waits for every running operation to return, stops the background
// work and closes badger. Operations started afterwards fail with ErrClosed.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return ErrClosed
	}
	db.closed = true
	db.closeMu.Unlock()

	db.users.Wait()
	close(db.quit)
	db.bg.Wait()

	done := make(chan error, 1)
	go func() { done <- db.bdb.Close() }()
	var timeout <-chan time.Time
	if db.Err() != nil {
		timeout = time.After(failedCloseTimeout)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("store: close %s: %w", db.dir, err)
		}
	case <-timeout:
		return fmt.Errorf("store: close %s: badger did not finish within %v "+
			"after the store failed: %w", db.dir, failedCloseTimeout, db.Err())
	}
	log.Infof("Closed store %s", db.dir)
	return nil
}

// Stats returns counters of commits and group-commit fsyncs.
func (db *DB) Stats() Stats {
	return Stats{Commits: db.commits.Load(), Syncs: db.syncer.syncs.Load()}
}

// update runs fn in one read-write transaction, commits it and, if it wrote
// anything, waits until it is on disk. fn may run more than once (after a
// conflict), so it must not have effects outside the transaction. Once the
// commit happened the wait for the fsync ignores ctx: a nil error always
// means durable, and a cancelled ctx never hides a committed step.
func (db *DB) update(ctx context.Context, fn func(t *txn) error) error {
	if err := db.enter(); err != nil {
		return err
	}
	defer db.users.Done()

	db.committing.Add(1)
	dirty, err := db.commitRetrying(ctx, fn)
	var round *syncRound
	if err == nil && dirty {
		db.commits.Add(1)
		if db.opts.Durability == GroupCommit && !db.opts.InMemory {
			// Join the next round before we stop counting as committing,
			// so a gathering syncer never starts without us.
			round, err = db.syncer.join()
		}
	}
	db.committing.Add(-1)
	db.syncer.committed()
	if err != nil || round == nil {
		return err
	}
	<-round.done
	return round.err
}

// commitRetrying runs commitOnce, again after a conflict up to the budget.
func (db *DB) commitRetrying(ctx context.Context, fn func(t *txn) error) (bool, error) {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		dirty, err := db.commitOnce(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < db.opts.MaxConflictRetries {
			log.Debugf("Transaction conflict, retry %d", attempt+1)
			continue
		}
		return dirty, translateErr(err)
	}
}

// commitOnce runs fn and commits under the writer lock.
func (db *DB) commitOnce(fn func(t *txn) error) (bool, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()

	t := &txn{bt: db.bdb.NewTransaction(true), update: true}
	defer t.bt.Discard()
	if err := fn(t); err != nil {
		return false, err
	}
	if !t.dirty {
		return false, nil
	}
	err := t.bt.Commit()
	if err == nil {
		err = db.opts.fault(FaultCommit)
	}
	if writeFailed(err) {
		return true, db.fail(fmt.Errorf("commit: %w", err))
	}
	return true, err
}

// view runs fn in a read-only snapshot.
func (db *DB) view(ctx context.Context, fn func(t *txn) error) error {
	if err := db.enter(); err != nil {
		return err
	}
	defer db.users.Done()
	if err := ctx.Err(); err != nil {
		return err
	}
	bt := db.bdb.NewTransaction(false)
	defer bt.Discard()
	return translateErr(fn(&txn{bt: bt}))
}

// translateErr turns badger's errors into ours where they leave the store;
// everything else (the caller's own errors) passes through unchanged.
func translateErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrConflict):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: %v", ErrTooBig, err)
	case errors.Is(err, badger.ErrDBClosed), errors.Is(err, badger.ErrBlockedWrites):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return err
}

// gcLoop runs value log GC every GCInterval until Close.
func (db *DB) gcLoop() {
	t := time.NewTicker(db.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-t.C:
		}
		if db.Err() != nil {
			return
		}
		if n, err := db.runValueLogGC(); err != nil {
			log.Warnf("Value log GC: %v", err)
		} else if n > 0 {
			log.Debugf("Value log GC rewrote %d file(s)", n)
		}
	}
}

// runValueLogGC rewrites value log files while badger finds ones worth
// rewriting, and reports how many it rewrote.
func (db *DB) runValueLogGC() (int, error) {
	if db.opts.InMemory {
		return 0, nil
	}
	for n := 0; n < 16; n++ {
		err := db.bdb.RunValueLogGC(db.opts.GCDiscardRatio)
		switch {
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		case err != nil:
			return n, err
		}
	}
	return 16, nil
}
