package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

	// NumCompactors is how many compaction goroutines badger runs (at
	// least 2: badger needs two, one of them for level 0). Each wakes
	// every 50 ms to look for work, idle or not; badger's default of 4
	// is for far bigger trees than a ledger's, and was most of an idle
	// daemon's CPU.
	NumCompactors int

	// MaxCommitDelay is how long a group-commit fsync may wait for steps
	// that are still committing to join it; zero syncs at once. It only
	// applies when other steps are running, so a lone writer never waits.
	MaxCommitDelay time.Duration

	// StallTimeout bounds a badger commit, a group-commit sync round and
	// Close. A step that takes longer means the disk (or badger, which
	// retries a failing memtable flush forever and then blocks writes) is
	// stuck: the store fails with ErrStalled instead of wedging the daemon.
	StallTimeout time.Duration

	// MinFreeBytes is the free space the ledger's filesystem must keep:
	// below it every write step is refused with ErrDiskFull (nothing is
	// written, the store does not fail, and writes resume when space
	// returns), and Open and Close refuse to let badger write. badger
	// appends to its logs through memory maps of sparse files, so a write
	// that finds the disk full is not an error it could return but a
	// SIGBUS that kills the process; the store must stop before the disk
	// does. This is the floor: it covers a memtable flushed into a
	// table; the reserve also grows with the ledger's LSM tree, which
	// badger's compactions rewrite in the background (see spaceGuard).
	// Zero disables the check.
	MinFreeBytes uint64

	// statfs returns the free bytes of the filesystem holding a
	// directory; unit tests replace it.
	statfs func(dir string) (uint64, error)

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

	// FaultCreateDir is just before Open fsyncs the parent of a ledger
	// directory it created.
	FaultCreateDir FaultPoint = "create-dir"
)

// failedCloseTimeout bounds Close after a failure (StallTimeout bounds it
// before): badger flushes its memtables on close and retries a failing
// flush forever, which must not keep a daemon with a broken disk from
// exiting.
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
		NumCompactors:      2,
		MaxCommitDelay:     2 * time.Millisecond,
		StallTimeout:       30 * time.Second,
		MinFreeBytes:       64 << 20,
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
	case o.StallTimeout <= 0:
		return fmt.Errorf("store: StallTimeout %v must be positive", o.StallTimeout)
	case o.BlockCacheSize <= 0:
		return fmt.Errorf("store: BlockCacheSize %d must be positive", o.BlockCacheSize)
	case o.NumCompactors < 2:
		return fmt.Errorf("store: NumCompactors %d must be at least 2",
			o.NumCompactors)
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

	// A read must not see, and act on, a step that is committed but not
	// yet on disk: if that step's fsync fails (or the power goes) the step
	// is gone, yet the reader has told a provider "credited". So every
	// committed step gets a sequence number, and a read whose snapshot may
	// hold a step newer than the last good sync round waits for a round.
	//
	// commitStarted is bumped under writeMu just before badger's commit
	// (so a snapshot that can see a step reads a number that counts it),
	// commitDone just after the commit returned (so a sync round that reads
	// it covers every step it counts), and synced by the syncer after each
	// good round, to the commitDone it read before its fsync. They are only
	// kept with group commit on disk; otherwise a commit is durable (or
	// never will be) when it returns.
	commitStarted atomic.Uint64
	commitDone    atomic.Uint64
	synced        atomic.Uint64
	trackSync     bool

	// durableTs is the badger version (commit timestamp) the last good
	// sync round covered: every step at or below it is on disk. A View
	// reading records no newer than it does not wait (see txn.durable).
	durableTs atomic.Uint64

	// space refuses writes while the disk is (nearly) full.
	space *spaceGuard

	// blog is badger's logger; it fails the store on the errors badger
	// only logs (a memtable flush or manifest write that keeps failing).
	blog *badgerLogger
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
		if err := checkDir(dir, opts); err != nil {
			return nil, err
		}
	}

	space := newSpaceGuard(dir, opts)
	if err := space.check(); err != nil {
		// badger writes at open (tables from the write-ahead logs a
		// previous process left): with the disk full that write kills
		// the process. A supervisor's restart finds the ledger intact
		// once space returns.
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}

	blog := &badgerLogger{}
	bo := badger.DefaultOptions(dir).
		WithInMemory(opts.InMemory).
		WithLogger(blog).
		WithSyncWrites(opts.Durability == SyncEachWrite).
		WithMemTableSize(opts.MemTableSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithNumCompactors(opts.NumCompactors).
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
	if !opts.InMemory {
		space.lsm = func() uint64 { return lsmBytes(bdb) }
	}

	db := &DB{
		bdb:    bdb,
		dir:    dir,
		opts:   opts,
		logs:   newLogSyncer(dir),
		quit:   make(chan struct{}),
		failed: make(chan struct{}),
		blog:   blog,
		space:  space,

		trackSync: opts.Durability == GroupCommit && !opts.InMemory,
	}
	blog.store.Store(db)
	if err := db.checkSchema(ctx); err != nil {
		_ = bdb.Close()
		return nil, err
	}

	syncFn := func() error {
		if err := opts.fault(FaultSync); err != nil {
			return err
		}
		return db.logs.sync()
	}
	// A process killed between a commit and its round left steps that
	// badger replays from its logs but nobody synced: make them durable
	// before the daemon reads (and acts on) them.
	if !opts.InMemory {
		db.durableTs.Store(db.readTs())
		if err := syncFn(); err != nil {
			_ = bdb.Close()
			return nil, fmt.Errorf("store: sync %s at open: %w: %w", dir,
				ErrSyncFailed, err)
		}
	}
	db.syncer = newSyncer(syncFn, func() bool { return db.committing.Load() > 0 },
		opts.MaxCommitDelay, opts.StallTimeout, db.commitDone.Load,
		db.readTs, db.setDurable, db.fail, db.Err, db.quit)
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
func checkDir(dir string, opts Options) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return createDir(dir, opts)
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

// createDir creates dir and any missing parents, and fsyncs the parent of
// each directory it created: until then a power cut can take the new
// directory's name, and with it the whole ledger badger is about to write
// (badger syncs the files it creates in it, not the directory's own entry).
func createDir(dir string, opts Options) error {
	dir = filepath.Clean(dir)
	var created []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: create %s: %v", ErrUnreadable, dir, err)
	}
	// Deepest first: a parent's entry is only worth syncing once the
	// directory it names is on disk with its own entries.
	for _, p := range created {
		err := opts.fault(FaultCreateDir)
		if err == nil {
			err = syncFile(filepath.Dir(p))
		}
		if err != nil {
			return fmt.Errorf("store: create %s: %w: %w", dir, ErrSyncFailed, err)
		}
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
//
// Close is always bounded: by StallTimeout on a working store (after which
// the store fails with ErrStalled) and by failedCloseTimeout once it
// failed, because a stuck disk can hold an operation, a sync round or
// badger's own close (which retries a failing memtable flush forever)
// indefinitely, and must not keep a daemon from exiting.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return ErrClosed
	}
	db.closed = true
	db.closeMu.Unlock()

	bound := db.opts.StallTimeout
	if db.Err() != nil {
		bound = min(bound, failedCloseTimeout)
	}
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	wait := func(what string, fn func() error) error {
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			return err
		case <-deadline.C:
			err := db.Err()
			if err == nil {
				err = db.fail(fmt.Errorf("%w: close: %s took longer "+
					"than %v", ErrStalled, what, bound))
			}
			return fmt.Errorf("store: close %s: %s did not finish "+
				"within %v: %w", db.dir, what, bound, err)
		}
	}

	err := wait("running operations", func() error {
		db.users.Wait()
		return nil
	})
	if err != nil {
		return err
	}
	close(db.quit)
	if err := wait("background work", func() error {
		db.bg.Wait()
		return nil
	}); err != nil {
		return err
	}
	if err := db.space.check(); err != nil {
		// badger's Close writes its memtable out into a table, which
		// on a full disk kills the process. Everything acknowledged
		// is in the synced write-ahead log (the last sync round ran
		// above), which the next Open replays: leave badger open, as
		// a process exit would.
		log.Warnf("Not closing badger on %s: its close writes the "+
			"memtable into a table, and %v; the write-ahead log is "+
			"synced and is replayed at the next start", db.dir, err)
		return fmt.Errorf("store: close %s: %w", db.dir, err)
	}
	if err := wait("badger", db.bdb.Close); err != nil {
		if db.Err() == nil {
			return fmt.Errorf("store: close %s: %w", db.dir, err)
		}
		return err
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
// means durable, and a cancelled ctx never hides a committed step. An
// Update that wrote nothing still read: it returns (fn's result) only once
// every step it could see is on disk, like view.
func (db *DB) update(ctx context.Context, fn func(t *txn) error) error {
	if err := db.enter(); err != nil {
		return err
	}
	defer db.users.Done()
	// A write made for a request under an Idempotency-Key marks the key
	// applied in the same commit (idempotency.go).
	fn = withIdemMark(ctx, fn)

	db.committing.Add(1)
	counted := true
	defer func() {
		// A step that panicked (or exited its goroutine) still stops
		// counting as committing, or every later sync round would wait
		// MaxCommitDelay for it.
		if counted {
			db.committing.Add(-1)
			db.syncer.committed()
		}
	}()
	dirty, seen, err := db.commitRetrying(ctx, fn)
	var round *syncRound
	if err == nil && dirty {
		db.commits.Add(1)
		if db.trackSync {
			// Join the next round before we stop counting as committing,
			// so a gathering syncer never starts without us.
			round, err = db.syncer.join()
		}
	}
	counted = false
	db.committing.Add(-1)
	db.syncer.committed()
	switch {
	case round != nil:
		select {
		case <-round.done:
			return round.err
		case <-db.failed:
			// A stalled round may never finish.
			return db.Err()
		}
	case dirty || seen == 0:
		return err
	}
	// fn read a snapshot and wrote nothing (or failed): whatever it
	// decided may rest on steps not yet on disk.
	if werr := db.waitSynced(ctx, seen); werr != nil {
		return werr
	}
	return err
}

// commitRetrying runs commitOnce, again after a conflict up to the budget.
// It returns whether a commit was attempted and, for a step that wrote
// nothing, the commit sequence its snapshot may have seen.
func (db *DB) commitRetrying(ctx context.Context,
	fn func(t *txn) error) (bool, uint64, error) {

	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return false, 0, err
		}
		dirty, seen, err := db.commitOnce(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < db.opts.MaxConflictRetries {
			log.Debugf("Transaction conflict, retry %d", attempt+1)
			continue
		}
		return dirty, seen, translateErr(err)
	}
}

// commitOnce runs fn and commits under the writer lock. The commit is
// watched: one that takes longer than StallTimeout (badger blocks writes
// while its memtable flushes keep failing) fails the store, and the step
// returns instead of holding writeMu, and every writer behind it, forever.
func (db *DB) commitOnce(fn func(t *txn) error) (bool, uint64, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	// A writer that waited behind a stalled commit must not go on.
	if err := db.Err(); err != nil {
		return false, 0, err
	}

	t := &txn{bt: db.bdb.NewTransaction(true), update: true}
	defer t.bt.Discard()
	// Under writeMu no commit is half done, so this counts every step
	// the snapshot can see.
	seen := db.commitStarted.Load()
	if err := fn(t); err != nil {
		return false, seen, err
	}
	if !t.dirty {
		return false, seen, nil
	}
	// badger's write of a step into a full disk is a SIGBUS, not an
	// error: refuse the step while there is still room.
	if err := db.space.check(); err != nil {
		return false, seen, err
	}

	if db.trackSync {
		db.commitStarted.Add(1)
	}
	done := make(chan error, 1)
	t.bt.CommitWith(func(err error) {
		if err == nil {
			err = db.opts.fault(FaultCommit)
		}
		done <- err
	})
	timer := time.NewTimer(db.opts.StallTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		return true, 0, db.fail(fmt.Errorf("%w: commit took longer than %v",
			ErrStalled, db.opts.StallTimeout))
	case <-db.failed:
		return true, 0, db.Err()
	}
	if writeFailed(err) {
		return true, 0, db.fail(fmt.Errorf("commit: %w", err))
	}
	if db.trackSync {
		// Counted even when badger refused the step (a conflict writes
		// nothing): commitDone must catch up with commitStarted.
		db.commitDone.Add(1)
	}
	return err == nil, 0, err
}

// waitSynced returns once a good sync round covered commit sequence seq,
// at once in the common case that it already has; it fails with the
// store's error when the round fails.
func (db *DB) waitSynced(ctx context.Context, seq uint64) error {
	for db.synced.Load() < seq {
		// The round joined now starts after every finished commit; a
		// commit still under way when it started needs the next one.
		round, err := db.syncer.join()
		if err != nil {
			return err
		}
		select {
		case <-round.done:
			if round.err != nil {
				return round.err
			}
		case <-db.failed:
			return db.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// view runs fn in a read-only snapshot, once every step the snapshot can
// see is on disk.
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
	t := &txn{bt: bt}
	if db.trackSync && bt.ReadTs() > db.durableTs.Load() {
		// The snapshot holds steps not yet on disk: each read waits
		// for them only if what it found was written by one of them.
		t.durable = func(ver uint64) error {
			return db.waitDurable(ctx, ver)
		}
	}
	err := fn(t)
	if t.durableErr != nil {
		return t.durableErr
	}
	return translateErr(err)
}

// waitDurable returns once a good sync round covered every step up to the
// badger version ver, at once in the common case that one has.
func (db *DB) waitDurable(ctx context.Context, ver uint64) error {
	for db.durableTs.Load() < ver {
		// The step at ver is visible, so it finished committing: the
		// round joined now reads a version at least ver before its
		// fsync.
		round, err := db.syncer.join()
		if err != nil {
			return err
		}
		select {
		case <-round.done:
			if round.err != nil {
				return round.err
			}
		case <-db.failed:
			return db.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// readTs is badger's newest version whose commit has finished: every step
// at or below it is in badger's logs.
func (db *DB) readTs() uint64 {
	bt := db.bdb.NewTransaction(false)
	defer bt.Discard()
	return bt.ReadTs()
}

// setDurable records, after a good sync round, the commit sequence and the
// badger version it covered.
func (db *DB) setDurable(seq, ver uint64) {
	db.synced.Store(seq)
	db.durableTs.Store(ver)
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
		if db.space.check() != nil {
			// GC rewrites value log files: not on a full disk.
			continue
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

// lsmBytes is the on-disk size of every table of badger's LSM tree, read
// from its table list (badger's Size is only refreshed once a minute).
func lsmBytes(bdb *badger.DB) uint64 {
	var n uint64
	for _, t := range bdb.Tables() {
		n += uint64(t.OnDiskSize)
	}
	return n
}
