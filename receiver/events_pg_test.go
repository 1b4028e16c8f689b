package receiver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

// errRollBack makes a test step roll back.
var errRollBack = errors.New("roll back")

// TestEventListStopsAtPostgresSequenceGap reproduces GET /v1/events on the
// PostgreSQL ledger stopping at the first missing event id: a rolled-back
// step burns the ids it drew from the sequence, and a list that reads ids
// one by one ended there, so a poller never saw the events after the gap.
// Every page, whatever its size, must walk across the gap, and next_after
// must lead to the rest.
func TestEventListStopsAtPostgresSequenceGap(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Config{DSN: srv.NewDatabase(t),
		NodePubkey: [33]byte{2, 9}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	a := newAPIHarness(t)
	a.db, a.api.db = db, db

	appendEv := func(fail bool) {
		err := db.Update(ctx, func(tx store.ReceiverTx) error {
			ev := &store.Event{Type: store.EventSubscriptionCreated,
				CreatedAt: a.now}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			if fail {
				return errRollBack
			}
			return nil
		})
		if fail {
			require.ErrorIs(t, err, errRollBack)
			return
		}
		require.NoError(t, err)
	}
	// Ids 1, then 2 and 3 burned, then 4 and 5.
	appendEv(false)
	appendEv(true)
	appendEv(true)
	appendEv(false)
	appendEv(false)
	want := []uint64{1, 4, 5}

	adm := a.tokens.Admin
	list := func(query string) ([]uint64, string) {
		code, body := a.call(adm, "GET", "/v1/events"+query, nil)
		require.Equal(t, 200, code, body)
		var seqs []uint64
		for _, v := range body["events"].([]any) {
			seqs = append(seqs, uint64(v.(map[string]any)["sequence"].(float64)))
		}
		next, _ := body["next_after"].(string)
		return seqs, next
	}

	got, next := list("")
	require.Equal(t, want, got, "one page")
	require.Empty(t, next)

	got, _ = list("?after=1")
	require.Equal(t, want[1:], got, "after the last id before the gap")
	got, _ = list("?after=2")
	require.Equal(t, want[1:], got, "after an id in the gap")

	for _, limit := range []int{1, 2} {
		var walked []uint64
		after := ""
		for pages := 0; pages < 10; pages++ {
			q := fmt.Sprintf("?limit=%d", limit)
			if after != "" {
				q += "&after=" + after
			}
			page, next := list(q)
			walked = append(walked, page...)
			if next == "" {
				break
			}
			after = next
		}
		require.Equal(t, want, walked, "pages of %d", limit)
	}
}
