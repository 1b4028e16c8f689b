package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// holdOpen is how long the first appender of
// testEventCommittedBelowCursor keeps its step open for the second one to
// commit past it. It is not a synchronisation: on a backend that commits
// event ids in order the second step cannot commit in that time, and the
// test only costs the wait.
const holdOpen = 500 * time.Millisecond

// cursorReader is the webhook dispatcher's view of the outbox: it reads the
// pending events after its cursor and moves the cursor to the last one
// read, never looking below it again.
type cursorReader struct {
	rs     store.ReceiverStore
	mu     sync.Mutex
	cursor store.EventID
	seen   map[store.EventID]bool
	// page, if set, makes the reader an event-list poller instead
	// (GET /v1/events with next_after): it reads every event,
	// delivered or not, page events at a time.
	page int
}

func newCursorReader(rs store.ReceiverStore) *cursorReader {
	return &cursorReader{rs: rs, seen: map[store.EventID]bool{}}
}

// poll reads once past the cursor and advances it.
func (r *cursorReader) poll(t *testing.T) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	see := func(ev *store.Event) error {
		r.seen[ev.ID] = true
		r.cursor = ev.ID
		return nil
	}
	return r.rs.View(Ctx(t), func(tx store.ReceiverTx) error {
		if r.page > 0 {
			return tx.ForEachEvent(r.cursor, r.page, see)
		}
		return tx.ForEachPendingEvent(r.cursor, see)
	})
}

// missed returns the ids in want the reader never saw.
func (r *cursorReader) missed(want []store.EventID) []store.EventID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []store.EventID
	for _, id := range want {
		if !r.seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// testEventCommittedBelowCursor reproduces a lost webhook: two steps
// append events at once, the one with the higher id commits first, a
// reader that advances its cursor past it then never sees the lower id
// when it commits. A backend must commit event ids in id order: a reader
// never sees id N+1 committed before N is visible.
func testEventCommittedBelowCursor(t *testing.T, open Open) {
	t.Run("second step commits while the first is open", func(t *testing.T) {
		rs, ctx := open(t), Ctx(t)
		r := newCursorReader(rs)
		var (
			appended = make(chan struct{})
			once     sync.Once
			second   = make(chan error, 1)
			secondID store.EventID
		)
		go func() {
			select {
			case <-appended:
			case <-ctx.Done():
				second <- ctx.Err()
				return
			}
			second <- rs.Update(ctx, func(tx store.ReceiverTx) error {
				ev := &store.Event{SubID: SubID(2),
					Type: store.EventPaymentReceived}
				err := tx.AppendEvent(ev)
				secondID = ev.ID
				return err
			})
		}()

		var (
			firstID    store.EventID
			secondErr  error
			secondDone bool
		)
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			ev := &store.Event{SubID: SubID(1),
				Type: store.EventPaymentReceived}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			firstID = ev.ID
			once.Do(func() { close(appended) })
			if !secondDone {
				select {
				case secondErr = <-second:
					secondDone = true
				case <-time.After(holdOpen):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			// The reader runs while this step is still open.
			return r.poll(t)
		})
		require.NoError(t, err)
		if !secondDone {
			select {
			case secondErr = <-second:
			case <-ctx.Done():
				t.Fatal("second appender never finished")
			}
		}
		require.NoError(t, secondErr)
		require.NotEqual(t, firstID, secondID)
		require.NoError(t, r.poll(t))
		require.Empty(t, r.missed([]store.EventID{firstID, secondID}),
			"events the cursor skipped (first %d, second %d)",
			firstID, secondID)
	})

	readers := []struct {
		name string
		page int
	}{
		{"webhook dispatcher", 0},
		{"event list poller, pages of 3", 3},
	}
	for _, rd := range readers {
		t.Run("two appenders and a polling "+rd.name, func(t *testing.T) {
			testTwoAppenders(t, open, rd.page)
		})
	}
}

// errRolledBack is a step's own failure, rolling it back after it
// appended an event (a gap on PostgreSQL).
var errRolledBack = errors.New("rolled back on purpose")

// testTwoAppenders runs two appenders, every fifth of whose steps rolls
// back after its append, against a reader polling past its cursor (the
// event list with pages of page, or the pending queue for 0): no
// committed event may be skipped.
func testTwoAppenders(t *testing.T, open Open, page int) {
	const (
		appenders = 2
		each      = 40
	)
	rs, ctx := open(t), Ctx(t)
	r := newCursorReader(rs)
	r.page = page
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		want    []store.EventID
		errs    = make(chan error, appenders+1)
		stopped = make(chan struct{})
		reader  = make(chan struct{})
	)
	go func() {
		defer close(reader)
		for {
			if err := r.poll(t); err != nil {
				errs <- err
				return
			}
			select {
			case <-stopped:
				return
			default:
			}
		}
	}()
	for a := 0; a < appenders; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var id store.EventID
				rollBack := i%5 == 4
				err := rs.Update(ctx, func(tx store.ReceiverTx) error {
					ev := &store.Event{
						SubID: SubID(uint64(a + 1)),
						Type:  store.EventPaymentReceived,
					}
					err := tx.AppendEvent(ev)
					id = ev.ID
					if err == nil && rollBack {
						return errRolledBack
					}
					return err
				})
				if rollBack && errors.Is(err, errRolledBack) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want = append(want, id)
				mu.Unlock()
			}
		}(a)
	}
	wg.Wait()
	close(stopped)
	<-reader
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, r.poll(t))
	require.Len(t, want, appenders*each*4/5)
	require.Empty(t, r.missed(want), "events the cursor skipped")
}

// testEventListAcrossGap reproduces an event list that ended at the first
// missing id: on PostgreSQL a rolled-back step burns the ids it drew, so
// ids have gaps, and ForEachEvent must walk the range across them (badger
// has no gap here; the same promises hold).
func testEventListAcrossGap(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	errRollBack := errors.New("roll back")
	lastID := func() store.EventID {
		var id store.EventID
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			var err error
			id, err = tx.LastEventID()
			return err
		}))
		return id
	}
	require.Zero(t, lastID(), "no events yet")
	appendEv := func(fail bool) store.EventID {
		var id store.EventID
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			ev := &store.Event{SubID: SubID(1),
				Type: store.EventPaymentReceived, CreatedAt: At(1)}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			id = ev.ID
			if fail {
				return errRollBack
			}
			return nil
		})
		if fail {
			require.ErrorIs(t, err, errRollBack)
			return 0
		}
		require.NoError(t, err)
		return id
	}
	var want []store.EventID
	want = append(want, appendEv(false))
	appendEv(true)
	appendEv(true)
	want = append(want, appendEv(false), appendEv(false), appendEv(false))
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.MarkEventDelivered(want[1], At(2))
	}))
	require.Equal(t, want[3], lastID())

	list := func(after store.EventID, limit int) []store.EventID {
		var got []store.EventID
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachEvent(after, limit,
				func(ev *store.Event) error {
					got = append(got, ev.ID)
					return nil
				})
		}))
		return got
	}

	tests := []struct {
		name  string
		after store.EventID
		limit int
		want  []store.EventID
	}{
		{"all, delivered too", 0, 0, want},
		{"limit across the gap", 0, 2, want[:2]},
		{"after the gap's start", want[0], 0, want[1:]},
		// want[1]-1 is a burned id on PostgreSQL, want[0] on badger.
		{"after the id below the gap's end", want[1] - 1, 0, want[1:]},
		{"after the last", want[3], 0, nil},
		{"after the largest id", ^store.EventID(0), 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, list(tc.after, tc.limit))
		})
	}

	t.Run("pages of one", func(t *testing.T) {
		var walked []store.EventID
		after := store.EventID(0)
		for i := 0; i < 10; i++ {
			page := list(after, 1)
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			after = page[len(page)-1]
		}
		require.Equal(t, want, walked)
	})

	t.Run("stop early", func(t *testing.T) {
		n := 0
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachEvent(0, 0, func(*store.Event) error {
				n++
				return store.ErrStop
			})
		}))
		require.Equal(t, 1, n)
	})
}
