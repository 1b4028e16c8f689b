package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
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

// openPGStore opens a PostgreSQL ledger on a fresh database, closed at
// t's cleanup.
func openPGStore(t *testing.T, ctx context.Context) *postgres.Store {
	t.Helper()
	srv := pgtest.Start(t)
	db, err := postgres.Open(ctx, postgres.Config{DSN: srv.NewDatabase(t),
		NodePubkey: [33]byte{2, 9}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// burnEventID appends an event in a step that rolls back: on PostgreSQL
// the id it drew is gone for good (a gap in the ids).
func burnEventID(t *testing.T, ctx context.Context, db store.ReceiverStore) {
	t.Helper()
	err := db.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.AppendEvent(&store.Event{
			Type: store.EventSubscriptionCreated}); err != nil {

			return err
		}
		return errRollBack
	})
	require.ErrorIs(t, err, errRollBack)
}

// TestDashboardSubscriptionEventsLostAtSequenceGap reproduces the
// dashboard's subscription page showing none or only old webhook events
// on the PostgreSQL ledger: it found the newest event id by probing ids
// for existence (doubling, then bisecting), which a gap in the ids (a
// rolled-back step burns its ids; id 1 itself may be one) sends to the
// wrong end. The page must list the subscription's newest events, newest
// first, whatever the gaps.
func TestDashboardSubscriptionEventsLostAtSequenceGap(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := openPGStore(t, ctx)

	tokens, err := common.LoadOrCreateTokens(t.TempDir())
	require.NoError(t, err)
	a := &apiHarness{t: t, tokens: tokens, now: time.Now(), db: db}
	a.api = &apiServer{db: db,
		log:    btclog.NewSLogger(btclog.NewDefaultHandler(os.Stderr)),
		now:    time.Now,
		node:   func() (route.Vertex, bool) { return route.Vertex{2, 9}, true },
		health: func() map[string]any { return map[string]any{} },
		tokens: tokens}
	k, h, err := newDashboard(a.api, 0)
	require.NoError(t, err)
	a.api.notify = k.Notify
	t.Cleanup(k.Stop)
	a.h = h
	d := &dashHarness{t: t, k: k, h: h, api: a}

	burnEventID(t, ctx, db) // id 1 never exists
	admin := d.login(common.AccessAdmin)
	code, _ := admin.post("/plans", planForm("Gym", "3600"))
	require.Equal(t, http.StatusSeeOther, code)
	_, plans := a.call(tokens.Admin, http.MethodGet, "/v1/plans", nil)
	planID := plans["plans"].([]any)[0].(map[string]any)["id"].(string)
	code, sub := a.call(tokens.Admin, http.MethodPost, "/v1/subscriptions",
		map[string]any{"plan_id": planID})
	require.Equal(t, http.StatusCreated, code)
	ref := sub["id"].(string)

	burnEventID(t, ctx, db)
	burnEventID(t, ctx, db)
	var subID store.SubID
	require.NoError(t, db.View(ctx, func(tx store.ReceiverTx) error {
		return tx.ForEachSubscription(0, store.Page{},
			func(s *store.ReceiverSubscription) error {
				subID = s.ID
				return store.ErrStop
			})
	}))
	require.NoError(t, db.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.AppendEvent(&store.Event{SubID: subID,
			Type: store.EventPaymentReceived, CreatedAt: time.Now()})
	}))

	var want []string
	_, evs := a.call(tokens.Admin, http.MethodGet, "/v1/events", nil)
	for _, v := range evs["events"].([]any) {
		want = append([]string{fmt.Sprint(
			v.(map[string]any)["sequence"])}, want...)
	}
	require.Len(t, want, 2, "subscription.created, payment.received")

	code, page := admin.get("/subscriptions/" + ref)
	require.Equal(t, http.StatusOK, code)
	var shown []string
	for _, m := range regexp.MustCompile(`<tr><td>(\d+)</td>`).
		FindAllStringSubmatch(page, -1) {

		shown = append(shown, m[1])
	}
	require.Equal(t, want, shown, "events on the page, newest first")
}
