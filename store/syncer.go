package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// syncer is the group commit: many committed transactions share one fsync.
// A waiter joins the round that has not started yet; the syncing goroutine
// takes that round (closing it to newcomers) and only then calls fsync, so
// every waiter's commit happened before the fsync that releases it.
type syncer struct {
	sync func() error
	quit <-chan struct{}

	// fail puts the store into its failed state and returns the error
	// every waiter gets; failed returns that error once set.
	fail   func(error) error
	failed func() error

	// busy reports steps still committing; while there are some (and for
	// at most gather) the fsync waits for them, because each commit is
	// cheap next to an fsync and a commit that misses a round waits for a
	// whole extra one. A lone writer is never delayed: it is not busy
	// once it waits.
	busy     func() bool
	gather   time.Duration
	progress chan struct{}

	// stall bounds one round's fsync; a longer one fails the store
	// (ErrStalled), so its waiters and every later operation return.
	stall time.Duration

	// commitDone reads the commit sequence and readTs badger's newest
	// finished version, before a round's fsync, and setSynced records
	// both once the fsync succeeded: every step counted by then is on
	// disk.
	commitDone func() uint64
	readTs     func() uint64
	setSynced  func(seq, ver uint64)

	mu   sync.Mutex
	next *syncRound
	kick chan struct{}

	syncs atomic.Uint64
}

// syncRound is one fsync shared by all of its waiters.
type syncRound struct {
	done chan struct{}
	err  error
}

func newSyncer(fn func() error, busy func() bool, gather, stall time.Duration,
	commitDone, readTs func() uint64, setSynced func(seq, ver uint64),
	fail func(error) error, failed func() error, quit <-chan struct{}) *syncer {

	return &syncer{
		sync: fn, busy: busy, gather: gather, quit: quit,
		fail: fail, failed: failed, stall: stall,
		commitDone: commitDone, readTs: readTs, setSynced: setSynced,
		kick:     make(chan struct{}, 1),
		progress: make(chan struct{}, 1),
	}
}

// committed tells a gathering syncer that a step finished committing.
func (s *syncer) committed() {
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

// gatherCommits waits, up to s.gather, until no step is mid-commit.
func (s *syncer) gatherCommits() {
	if s.gather <= 0 || !s.busy() {
		return
	}
	timer := time.NewTimer(s.gather)
	defer timer.Stop()
	for s.busy() {
		select {
		case <-s.progress:
		case <-timer.C:
			return
		case <-s.quit:
			return
		}
	}
}

// join adds the caller to the round that has not started yet; the round's
// fsync starts after this call, so it covers every commit made before it.
func (s *syncer) join() (*syncRound, error) {
	if err := s.failed(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		s.next = r
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return r, nil
}

// run performs rounds until quit. Close only closes quit once every user has
// returned, so no waiter is left behind.
func (s *syncer) run() {
	for {
		select {
		case <-s.kick:
			s.flush()
		case <-s.quit:
			s.flush()
			return
		}
	}
}

// flush takes the pending round, if any, and syncs it.
func (s *syncer) flush() {
	s.gatherCommits()
	s.mu.Lock()
	r := s.next
	s.next = nil
	s.mu.Unlock()
	if r == nil {
		return
	}
	// After a failed fsync the kernel may have dropped the dirty pages, so
	// nothing written since can be trusted to be durable: the store fails
	// for good instead of retrying.
	err := s.failed()
	if err == nil {
		// Every commit counted here finished before the fsync starts.
		covered := s.commitDone()
		coveredVer := s.readTs()
		watchdog := time.AfterFunc(s.stall, func() {
			s.fail(fmt.Errorf("%w: sync round took longer than %v",
				ErrStalled, s.stall))
		})
		err = s.sync()
		watchdog.Stop()
		s.syncs.Add(1)
		if err != nil {
			err = s.fail(fmt.Errorf("%w: %w", ErrSyncFailed, err))
		} else {
			s.setSynced(covered, coveredVer)
		}
	}
	r.err = err
	close(r.done)
}
