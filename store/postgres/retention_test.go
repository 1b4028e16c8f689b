package postgres_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestIdemPruneSticksWhenFull: an IdemBegin refused at the cap keeps the
// prune it made on the way, as on badger (storetest).
func TestIdemPruneSticksWhenFull(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	storetest.RunIdemPruneSticksWhenFull(t, open(t, srv.NewDatabase(t), 1))
}

// growthPayload is the size of a real payment.received event body (the
// subscription and payment views, receiver/core.AppendEvent: 769 bytes).
const growthPayload = 769

// TestLedgerGrowthPerPayment measures what the ledger keeps per payment
// once the receiver has done with it, and holds the PostgreSQL store to
// the badger store's retention: each credit is held then settled
// (ClearHeld), its event delivered at one endpoint (the delivery row
// deleted), refusals of a subscription pruned to the newest 64. What is
// left grows with the payments on purpose: the credited payment rows (the
// ledger) and the events (the outbox the event list and audits read).
// The per-table figures it logs are in docs/operators.md.
func TestLedgerGrowthPerPayment(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s := open(t, dsn, 1)
	// 40 steps of 100 credits with a VACUUM before each: about 20 s on
	// a quiet machine, past storetest's one-minute context under -race
	// on a loaded one. A deadline, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	tables := []string{"payments", "events", "deliveries", "held",
		"subscriptions", "refusal_events", "idempotency"}
	sizes := func() map[string]int64 {
		_, err := conn.Exec(ctx, "VACUUM ANALYZE")
		require.NoError(t, err)
		out := map[string]int64{}
		for _, tb := range tables {
			var n int64
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT pg_total_relation_size($1::regclass)", tb).
				Scan(&n))
			out[tb] = n
		}
		return out
	}
	rows := func(table string) int64 {
		var n int64
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT count(*) FROM "+table).Scan(&n))
		return n
	}

	const (
		subs    = 10
		credits = 4000
		batch   = 100
		refused = 100
	)
	for i := range subs {
		require.NoError(t, storetest.PutActiveSub(ctx, s,
			storetest.SubID(uint64(i+1))))
	}
	ep := store.EndpointID{1}
	payload := bytes.Repeat([]byte{'x'}, growthPayload)
	var before map[string]int64
	for b := 0; b < credits/batch; b++ {
		// What autovacuum does on a live server, every few dead
		// rows: freed index pages are reused, not added.
		_, err := conn.Exec(ctx, "VACUUM held, deliveries, events, "+
			"subscriptions")
		require.NoError(t, err)
		if b == credits/batch/2 {
			// Measure the second half: by then the tables that
			// do not grow have reached their working size.
			before = sizes()
		}
		var ids []store.EventID
		// The decision: credit while lnd holds the HTLC.
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			ids = ids[:0]
			for i := b * batch; i < (b+1)*batch; i++ {
				n := uint64(i + 1)
				sub := storetest.SubID(uint64(i%subs + 1))
				h := storetest.HashOf(n)
				if err := tx.MarkHeld(h); err != nil {
					return err
				}
				sp, err := tx.Subscription(sub)
				if err != nil {
					return err
				}
				sp.TotalPaid += 60_000
				sp.Payments++
				sp.LastSeq = n
				if err := tx.PutSubscription(sp); err != nil {
					return err
				}
				err = tx.PutPayment(&store.Payment{Hash: h,
					SubID: sub, Seq: n, Amount: 60_000,
					Seconds: 60, State: store.PaymentCredited,
					ReceivedAt: storetest.At(int64(n)),
					Rate:       1000})
				if err != nil {
					return err
				}
				ev := &store.Event{SubID: sub,
					Type:      store.EventPaymentReceived,
					Payload:   payload,
					CreatedAt: storetest.At(int64(n))}
				if err := tx.AppendEvent(ev); err != nil {
					return err
				}
				ids = append(ids, ev.ID)
			}
			return nil
		}))
		// lnd settled: the hold mark goes, the stream moves on.
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			for i := b * batch; i < (b+1)*batch; i++ {
				n := uint64(i + 1)
				if err := tx.ClearHeld(storetest.HashOf(n)); err != nil {
					return err
				}
			}
			return tx.SetSettleIndex(uint64((b + 1) * batch))
		}))
		// The webhook: a row while pending, gone once delivered.
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			for _, id := range ids {
				err := tx.PutDelivery(&store.Delivery{
					Endpoint: ep, Event: id,
					State: store.DeliveryPending, Attempts: 1})
				if err != nil {
					return err
				}
			}
			return nil
		}))
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			for _, id := range ids {
				ev, err := tx.Event(id)
				if err != nil {
					return err
				}
				ev.Delivered = true
				ev.DeliveredAt = ev.CreatedAt
				ev.FinishedAt = []store.EndpointID{ep}
				if err := tx.PutEvent(ev); err != nil {
					return err
				}
				if err := tx.DeleteDelivery(ep, id); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	// Refusals of one subscription, pruned as the receiver does.
	sub := storetest.SubID(1)
	for i := range refused {
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			err := tx.PutPayment(&store.Payment{
				Hash:  storetest.HashOf(uint64(1_000_000 + i)),
				SubID: sub, Seq: uint64(1_000_000 + i),
				Amount: 1, State: store.PaymentRefused,
				Reason:     "below_minimum: 1 msat",
				ReceivedAt: storetest.At(int64(1_000_000 + i))})
			if err != nil {
				return err
			}
			_, err = tx.PruneRefused(sub, 64)
			return err
		}))
	}

	// Retention: what the receiver is done with is gone.
	require.Zero(t, rows("held"), "held rows after settlement")
	require.Zero(t, rows("deliveries"), "delivery rows after delivery")
	require.EqualValues(t, credits+64, rows("payments"),
		"credited rows kept, refused pruned to 64")
	require.EqualValues(t, credits, rows("events"), "events are kept")

	after := sizes()
	var total int64
	const measured = credits / 2
	for _, tb := range tables {
		d := after[tb] - before[tb]
		total += d
		t.Logf("%-14s %9d bytes, %6.0f per payment", tb, d,
			float64(d)/measured)
	}
	t.Logf("%-14s %9d bytes, %6.0f per payment (the last %d of %d "+
		"payments, event body %d bytes)", "total", total,
		float64(total)/measured, measured, credits, growthPayload)
}
