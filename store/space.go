package store

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// spaceGuard refuses writes while the ledger's filesystem has less free
// space than the reserve, and logs each disk-full episode once, when it
// starts and when it ends.
//
// The reserve is Options.MinFreeBytes plus the on-disk size of badger's
// LSM tree (every table of every level). Refusing foreground writes does
// not stop badger: its compactions keep writing new tables (level 0 into
// the base level, and on down) through memory maps until the old ones are
// deleted, and a compaction that finds the disk full is a SIGBUS. Any one
// compaction writes at most the tables it merges, and concurrent ones merge
// disjoint tables, so the LSM's size bounds what they may need; the floor
// covers a memtable flushed into a level-0 table and the write-ahead log.
type spaceGuard struct {
	dir     string
	reserve uint64
	statfs  func(dir string) (uint64, error)
	// lsm returns the LSM tree's bytes on disk (nil before badger is
	// open, and for a store in memory).
	lsm func() uint64

	mu   sync.Mutex
	full bool
	// lsmBytes is lsm's answer at lsmAt, reused for lsmCache.
	lsmBytes uint64
	lsmAt    time.Time
}

// lsmCache is how long the LSM's size is reused: it changes with each
// flush and compaction, a few times a second at most.
const lsmCache = time.Second

// reserveLocked returns the current reserve; the caller holds mu.
func (g *spaceGuard) reserveLocked() uint64 {
	if g.lsm == nil {
		return g.reserve
	}
	if now := time.Now(); now.Sub(g.lsmAt) >= lsmCache {
		g.lsmBytes, g.lsmAt = g.lsm(), now
	}
	return g.reserve + g.lsmBytes
}

func newSpaceGuard(dir string, opts Options) *spaceGuard {
	g := &spaceGuard{dir: dir, statfs: opts.statfs}
	if !opts.InMemory {
		g.reserve = opts.MinFreeBytes
	}
	if g.statfs == nil {
		g.statfs = freeBytes
	}
	return g
}

// freeBytes returns the bytes an unprivileged writer may still use on the
// filesystem holding dir (statfs f_bavail: the root-only reserve of ext4
// does not count, as badger may run without it).
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	unit := uint64(st.Bsize)
	if st.Frsize > 0 {
		// Block counts are in fragment-size units.
		unit = uint64(st.Frsize)
	}
	return st.Bavail * unit, nil
}

// check returns ErrDiskFull (wrapping ENOSPC) while free space is below
// the reserve. A statfs that fails does not block writes: the write
// itself will tell.
func (g *spaceGuard) check() error {
	if g == nil || g.reserve == 0 {
		return nil
	}
	free, err := g.statfs(g.dir)
	if err != nil {
		log.Debugf("Free space of %s unknown: %v", g.dir, err)
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if reserve := g.reserveLocked(); free < reserve {
		err := fmt.Errorf("%w: %s: %d bytes free, below the %d kept in "+
			"reserve (%d, and %d for compacting the ledger's "+
			"tables): %w", ErrDiskFull, g.dir, free, reserve,
			g.reserve, reserve-g.reserve, syscall.ENOSPC)
		if !g.full {
			g.full = true
			log.Errorf("Ledger disk full, refusing every write until "+
				"space returns (%v)", err)
		}
		return err
	}
	if g.full {
		g.full = false
		log.Infof("Ledger %s: %d bytes free again, writes resume", g.dir,
			free)
	}
	return nil
}

// SpaceErr returns ErrDiskFull (naming the directory and the free space,
// wrapping ENOSPC) while the ledger's filesystem has less free space than
// Options.MinFreeBytes, and nil otherwise. It looks afresh at each call,
// so a daemon's health check sees the disk fill up and empty before any
// write tries.
func (db *DB) SpaceErr() error {
	return db.space.check()
}
