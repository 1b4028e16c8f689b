package receiver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// refusingStore refuses every write step after running it, as the store
// does below its free-space reserve: ErrDiskFull, nothing written.
type refusingStore struct {
	store.ReceiverStore
	updates *int
}

func (s refusingStore) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	*s.updates++
	return s.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return fmt.Errorf("%w: test", store.ErrDiskFull)
	})
}

// TestExpiryOnFullDiskLogsStatesNeverCommitted: with the disk full the
// expiry pass logged "subscription X is now past_due" for a change the
// store refused, and one "ageing ... disk full" error for each of up to
// 1000 subscriptions per pass. It must log only committed changes and stop
// the pass at the first refusal.
func TestExpiryOnFullDiskLogsStatesNeverCommitted(t *testing.T) {
	t.Parallel()
	db, err := store.Open(context.Background(), t.TempDir(),
		store.DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	rs := db.Receiver()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []store.SubID
	require.NoError(t, rs.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			for i := byte(1); i <= 5; i++ {
				id := store.SubID{i}
				ids = append(ids, id)
				err := tx.PutSubscription(&store.ReceiverSubscription{
					ID: id, State: store.SubActive,
					Terms:     store.Terms{Grace: time.Hour},
					PaidUntil: start, CreatedAt: start,
				})
				if err != nil {
					return err
				}
			}
			return nil
		}))

	var logs bytes.Buffer
	log := btclog.NewSLogger(btclog.NewDefaultHandler(&logs))
	updates := 0
	changed := ageSubscriptions(context.Background(),
		refusingStore{rs, &updates}, log, ids, start.Add(time.Minute))
	require.False(t, changed)
	require.Equal(t, 1, updates, "the pass went on after a refusal")
	require.NotContains(t, logs.String(), "is now")
	require.Equal(t, 1, strings.Count(logs.String(), "disk full"),
		logs.String())

	// Space is back: each change is committed and logged.
	logs.Reset()
	require.True(t, ageSubscriptions(context.Background(), rs, log, ids,
		start.Add(time.Minute)))
	require.Equal(t, len(ids), strings.Count(logs.String(), "is now"))
	sub := ids[0]
	require.NoError(t, rs.View(context.Background(),
		func(tx store.ReceiverTx) error {
			s, err := tx.Subscription(sub)
			require.Equal(t, store.SubPastDue, s.State)
			return err
		}))
}

// TestExpiryPassFsyncsOncePerSubscription reproduces the paid check's tail
// under expiry: the pass aged each due subscription in its own step, one
// commit and one fsync each, so a window where hundreds of subscriptions
// ran out filled the group commit with single steps that every reader and
// payment queued behind. It must age them in batches of core.AgeBatch.
func TestExpiryPassFsyncsOncePerSubscription(t *testing.T) {
	t.Parallel()
	opts := store.DefaultOptions()
	opts.GCInterval = 0
	opts.MinFreeBytes = 0
	db, err := store.Open(context.Background(), t.TempDir(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	rs := db.Receiver()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const subs = 450
	var ids []store.SubID
	require.NoError(t, rs.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			for i := 1; i <= subs; i++ {
				id := store.SubID{byte(i >> 8), byte(i)}
				ids = append(ids, id)
				err := tx.PutSubscription(&store.ReceiverSubscription{
					ID: id, State: store.SubActive,
					Terms:     store.Terms{Grace: time.Hour},
					PaidUntil: start, CreatedAt: start,
				})
				if err != nil {
					return err
				}
			}
			return nil
		}))
	// One of them is gone by the time it is aged: it is skipped, the
	// rest of its batch is not.
	ids = append(ids, store.SubID{0xff, 0xff})

	before := db.Stats()
	var logs bytes.Buffer
	log := btclog.NewSLogger(btclog.NewDefaultHandler(&logs))
	require.True(t, ageSubscriptions(context.Background(), rs, log, ids,
		start.Add(time.Minute)))
	after := db.Stats()
	require.Equal(t, subs, strings.Count(logs.String(), "is now"))
	require.LessOrEqual(t, after.Commits-before.Commits,
		uint64((subs+core.AgeBatch-1)/core.AgeBatch), "commits for the pass")
	require.NoError(t, rs.View(context.Background(),
		func(tx store.ReceiverTx) error {
			for _, id := range ids[:subs] {
				s, err := tx.Subscription(id)
				if err != nil {
					return err
				}
				require.Equal(t, store.SubPastDue, s.State)
			}
			return nil
		}))
}
