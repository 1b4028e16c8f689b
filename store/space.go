package store

import (
	"fmt"
	"sync"
	"syscall"
)

// spaceGuard refuses writes while the ledger's filesystem has less free
// space than the reserve (Options.MinFreeBytes), and logs each disk-full
// episode once, when it starts and when it ends.
type spaceGuard struct {
	dir     string
	reserve uint64
	statfs  func(dir string) (uint64, error)

	mu   sync.Mutex
	full bool
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
	return st.Bavail * uint64(st.Bsize), nil
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
	if free < g.reserve {
		err := fmt.Errorf("%w: %s: %d bytes free, below the %d kept in "+
			"reserve: %w", ErrDiskFull, g.dir, free, g.reserve,
			syscall.ENOSPC)
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
