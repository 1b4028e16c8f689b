package receiver

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/store"
)

// Long polls on GET /v1/events (wait_sec): a follower of the event list
// gets the next event as soon as it is on disk, without polling.
const (
	// maxEventWaitSec is the longest wait_sec. The API server's write
	// timeout (--api.writetimeout, 30 s by default) runs from the end
	// of the request's headers and bounds the whole answer, so the
	// wait must end well before it: a request cut off by it gets no
	// answer at all, not the empty page.
	maxEventWaitSec = 20

	// eventRereadBadger is how often a waiting request reads again on
	// badger (its page, or for the whole list the ledger's last event
	// id, see eventWatch), where this process makes every write and
	// the event notifier wakes it: a safety net only.
	eventRereadBadger = time.Second

	// eventRereadPostgres is the same on PostgreSQL: the other
	// receivers of a cluster append events this process never sees, so
	// only a read finds them.
	eventRereadPostgres = 250 * time.Millisecond
)

// maxEventWait is the longest wait a server with the given write timeout
// allows: maxEventWaitSec, or two thirds of the write timeout if that is
// less, so the page is always written in time.
func maxEventWait(writeTimeout time.Duration) time.Duration {
	return min(maxEventWaitSec*time.Second, writeTimeout*2/3)
}

// parseWaitSec reads GET /v1/events' wait_sec: 0 when absent, else whole
// seconds from 0 to maxEventWaitSec.
func parseWaitSec(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxEventWaitSec {
		return 0, badField("wait_sec", "must be whole seconds between "+
			"0 and "+strconv.Itoa(maxEventWaitSec))
	}
	return time.Duration(n) * time.Second, nil
}

// waitEvents answers a long poll: it reads the page with read until it
// holds an event, and waits in between for the event notifier, the
// safety re-read, the end of the wait, or the daemon's stop (then it
// returns the page as last read, empty). If ctx ends (the client went
// away) it returns ctx's error.
//
// It subscribes before its first read: an event committed between a read
// and the wait still wakes it.
//
// moved, if set, is asked at each safety re-read whether the page can
// have changed (see eventWatch); the page is read again only if so. nil
// reads the page at every re-read.
func (s *apiServer) waitEvents(ctx context.Context, wait time.Duration,
	read func() ([]eventView, error),
	moved func() bool) ([]eventView, error) {

	var wake <-chan struct{}
	if s.events != nil {
		ch, unsubscribe := s.events.Subscribe()
		defer unsubscribe()
		wake = ch
	}
	if s.maxEventWait > 0 {
		wait = min(wait, s.maxEventWait)
	}
	reread := s.rereadInterval()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(reread)
	defer tick.Stop()
	for {
		evs, err := read()
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		for again := false; !again; {
			select {
			case <-wake:
				again = true
			case <-tick.C:
				again = moved == nil || moved()
			case <-deadline.C:
				return evs, nil
			case <-s.done:
				return evs, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// rereadInterval is how often a long poll reads again without a wake-up.
func (s *apiServer) rereadInterval() time.Duration {
	if s.eventReread <= 0 {
		return eventRereadBadger
	}
	return s.eventReread
}

// eventWatch is the safety re-read of the long polls that follow the
// whole list (not pending=true), shared by all of them: a waiting request
// whose tick finds the ledger's last event id older than half the re-read
// interval reads it again (one index probe, store.ReceiverTx.LastEventID)
// for every waiter, and a waiter reads its own page only once that id is
// past its after. Without it each waiter read its page at each tick: on a
// PostgreSQL ledger four reads a second per waiting request (a thousand a
// second at --api.maxconns' 256), each a transaction on the connection
// pool the payment steps use. A follower of pending=true still reads its
// page at each tick: another receiver's retry can put an old event back
// in the queue without moving the last id.
type eventWatch struct {
	mu sync.Mutex
	// at is when the read that found last began (zero: never read).
	at   time.Time
	last store.EventID
	// reading is set while one waiter reads for all: the others use
	// last meanwhile instead of queueing behind it.
	reading bool
}

// lastID returns the ledger's last event id as read at most fresh ago, or
// being read now by another waiter; it reads it itself otherwise.
func (w *eventWatch) lastID(ctx context.Context, db store.ReceiverStore,
	fresh time.Duration) (store.EventID, error) {

	w.mu.Lock()
	if w.reading || (!w.at.IsZero() && time.Since(w.at) < fresh) {
		last := w.last
		w.mu.Unlock()
		return last, nil
	}
	w.reading = true
	w.mu.Unlock()
	defer func() {
		// Also if the read panics: the others would wait for it.
		w.mu.Lock()
		w.reading = false
		w.mu.Unlock()
	}()

	start := time.Now()
	var id store.EventID
	err := db.View(ctx, func(tx store.ReceiverTx) error {
		var err error
		id, err = tx.LastEventID()
		return err
	})
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.at, w.last = start, id
	w.mu.Unlock()
	return id, nil
}

// eventNotifier wraps the receiver's store so that a long poll learns of
// new events without polling: once a step that queued an event has
// returned nil from Update (it is on disk), it wakes the waiting
// requests. It sits outside the paid index, so every writer of the
// daemon's store (pipeline, expiry, API, webhooks, dashboard) goes
// through it. A step's error, and a retry of it after a conflict, pass
// through unchanged: the wrapper only watches the transaction.
type eventNotifier struct {
	store.ReceiverStore

	n *dashboard.Notifier
}

var _ store.ReceiverStore = (*eventNotifier)(nil)

func newEventNotifier(rs store.ReceiverStore) *eventNotifier {
	return &eventNotifier{ReceiverStore: rs, n: dashboard.NewNotifier()}
}

// Update implements store.ReceiverStore: it runs the step and, once it
// is committed, wakes the waiters if the step queued an event.
func (e *eventNotifier) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	var queued bool
	err := e.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
		// Only the attempt that commits counts: one rolled back
		// for a conflict may have queued what the next does not.
		queued = false
		return fn(&eventRecorder{ReceiverTx: tx, queued: &queued})
	})
	if err == nil && queued {
		e.n.Notify()
	}
	return err
}

// eventRecorder notes whether a step queued an event: appended one, or
// put one that is not delivered (a retry puts a dead or delivered event
// back in the pending queue, which a waiter on pending=true wants; the
// dispatcher puts a pending one again after a failed attempt, a wake-up
// that costs the waiters one read each).
type eventRecorder struct {
	store.ReceiverTx
	queued *bool
}

// AppendEvent implements store.ReceiverTx.
func (r *eventRecorder) AppendEvent(ev *store.Event) error {
	err := r.ReceiverTx.AppendEvent(ev)
	if err == nil {
		*r.queued = true
	}
	return err
}

// PutEvent implements store.ReceiverTx.
func (r *eventRecorder) PutEvent(ev *store.Event) error {
	err := r.ReceiverTx.PutEvent(ev)
	if err == nil && !ev.Delivered {
		*r.queued = true
	}
	return err
}
