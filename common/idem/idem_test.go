package idem

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// rig is a keeper over an on-disk ledger in front of a handler that counts
// its executions and answers with a fresh random id, as a create does.
type rig struct {
	t     *testing.T
	dir   string
	db    *store.DB
	k     *Keeper
	runs  atomic.Int32
	block chan struct{}
	fail  atomic.Bool
	// effect makes the handler commit a plan named after its seed (a
	// create), before it fails or answers.
	effect atomic.Bool
	seeds  chan [16]byte
	now    time.Time
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, dir: t.TempDir(), seeds: make(chan [16]byte, 16),
		now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	r.open()
	t.Cleanup(func() { _ = r.db.Close() })
	return r
}

// open opens the ledger and makes a new keeper, as a daemon start does.
func (r *rig) open() {
	opts := store.DefaultOptions()
	opts.GCInterval = 0
	db, err := store.Open(context.Background(), r.dir, opts)
	require.NoError(r.t, err)
	r.db = db
	r.k = New(db, btclog.Disabled)
	r.k.Now = func() time.Time { return r.now }
}

// restart closes and reopens the ledger.
func (r *rig) restart() {
	require.NoError(r.t, r.db.Close())
	r.open()
}

func (r *rig) handler(w http.ResponseWriter, req *http.Request) {
	n := r.runs.Add(1)
	if seed, ok := Seed(req.Context()); ok {
		r.seeds <- seed
	}
	if r.block != nil {
		<-r.block
	}
	body, _ := io.ReadAll(req.Body)
	if r.effect.Load() {
		id := [16]byte{byte(n)}
		if seeded, ok := SeededID(req.Context(), "plan"); ok {
			id = seeded
		}
		err := r.db.Receiver().Update(req.Context(),
			func(tx store.ReceiverTx) error {
				return tx.PutPlan(&store.Plan{
					ID: store.PlanID(hex.EncodeToString(id[:])),
				})
			})
		if err != nil {
			common.WriteError(w, http.StatusInternalServerError,
				"internal", "", err.Error())
			return
		}
	}
	if r.fail.Load() {
		common.WriteError(w, http.StatusInternalServerError, "internal",
			"", "boom")
		return
	}
	common.WriteJSON(w, http.StatusCreated, map[string]any{
		"run": n, "at": time.Now().UnixNano(), "echo": string(body),
	})
}

// plans counts the plans the handler created.
func (r *rig) plans() int {
	n := 0
	require.NoError(r.t, r.db.Receiver().View(context.Background(),
		func(tx store.ReceiverTx) error {
			n = 0
			return tx.ForEachPlan(func(*store.Plan) error {
				n++
				return nil
			})
		}))
	return n
}

type answer struct {
	status   int
	body     string
	replayed bool
}

func (r *rig) post(token, path, key, body string) answer {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set(Header, key)
	}
	rec := httptest.NewRecorder()
	r.k.Wrap(r.handler)(rec, req)
	return answer{rec.Code, rec.Body.String(),
		rec.Header().Get(ReplayedHeader) == "true"}
}

func TestRetriedPOSTExecutesTwiceWithoutKeyOnceWithKey(t *testing.T) {
	t.Parallel()
	r := newRig(t)

	a := r.post("adm", "/v1/subscriptions", "", `{"x":1}`)
	b := r.post("adm", "/v1/subscriptions", "", `{"x":1}`)
	require.NotEqual(t, a.body, b.body)
	require.EqualValues(t, 2, r.runs.Load())

	first := r.post("adm", "/v1/subscriptions", "k1", `{"x":1}`)
	require.Equal(t, http.StatusCreated, first.status)
	require.False(t, first.replayed)
	again := r.post("adm", "/v1/subscriptions", "k1", `{"x":1}`)
	require.Equal(t, first.status, again.status)
	require.Equal(t, first.body, again.body, "byte for byte")
	require.True(t, again.replayed)
	require.EqualValues(t, 3, r.runs.Load())
}

func TestRetryAfterRestartReplaysTheFirstResult(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	first := r.post("adm", "/v1/subscriptions", "k1", `{"offer":"o"}`)
	r.restart()
	again := r.post("adm", "/v1/subscriptions", "k1", `{"offer":"o"}`)
	require.Equal(t, first, answer{again.status, again.body, false})
	require.True(t, again.replayed)
	require.EqualValues(t, 1, r.runs.Load())
}

func TestSameKeyDifferentBodyIsConflict(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.post("adm", "/v1/subscriptions", "k1", `{"offer":"a"}`)
	got := r.post("adm", "/v1/subscriptions", "k1", `{"offer":"b"}`)
	require.Equal(t, http.StatusConflict, got.status)
	require.Contains(t, got.body, `"idempotency_key_reused"`)
	require.EqualValues(t, 1, r.runs.Load())
}

func TestKeysAreScopedPerTokenAndPath(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.post("adm", "/v1/subscriptions/a/cancel", "k1", ``)
	r.post("adm", "/v1/subscriptions/b/cancel", "k1", ``)
	r.post("other", "/v1/subscriptions/a/cancel", "k1", ``)
	require.EqualValues(t, 3, r.runs.Load())
	r.post("adm", "/v1/subscriptions/a/cancel", "k1", ``)
	require.EqualValues(t, 3, r.runs.Load())
}

func TestConcurrentDuplicatesExecuteOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.block = make(chan struct{})
	var (
		wg  sync.WaitGroup
		got [2]answer
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		got[0] = r.post("adm", "/v1/subscriptions", "k1", `{"o":1}`)
	}()
	<-r.seeds // the first is executing
	go func() {
		defer wg.Done()
		got[1] = r.post("adm", "/v1/subscriptions", "k1", `{"o":1}`)
	}()
	// Wait until the second waits on the key's lock.
	require.Eventually(t, func() bool {
		r.k.mu.Lock()
		defer r.k.mu.Unlock()
		for _, l := range r.k.locks {
			if l.refs == 2 {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
	close(r.block)
	wg.Wait()
	require.EqualValues(t, 1, r.runs.Load())
	require.Equal(t, got[0].body, got[1].body)
	require.Equal(t, got[0].status, got[1].status)
	require.True(t, got[0].replayed != got[1].replayed)
}

// TestFailedExecutionRunsAgainWithTheSameSeed: a 5xx (or a crash before the
// result is stored) leaves the key open; the retry executes again with the
// first seed, so a create finds what the first execution made.
func TestFailedExecutionRunsAgainWithTheSameSeed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.fail.Store(true)
	got := r.post("adm", "/v1/subscriptions", "k1", `{}`)
	require.Equal(t, http.StatusInternalServerError, got.status)
	seed1 := <-r.seeds
	r.restart()
	r.fail.Store(false)
	got = r.post("adm", "/v1/subscriptions", "k1", `{}`)
	require.Equal(t, http.StatusCreated, got.status)
	require.Equal(t, seed1, <-r.seeds)
	require.EqualValues(t, 2, r.runs.Load())
	require.True(t, r.post("adm", "/v1/subscriptions", "k1", `{}`).replayed)
}

func TestExpiredKeyExecutesAgain(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.post("adm", "/v1/plans", "k1", `{}`)
	r.now = r.now.Add(DefaultTTL + time.Second)
	got := r.post("adm", "/v1/plans", "k1", `{}`)
	require.False(t, got.replayed)
	require.EqualValues(t, 2, r.runs.Load())
	n, err := r.db.IdemCount(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the expired record was replaced")
}

func TestKeyCapRefusesNewKeysUntilOldOnesExpire(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.k.MaxKeys = 3
	for i := range 3 {
		got := r.post("adm", "/v1/plans", fmt.Sprint("k", i), `{}`)
		require.Equal(t, http.StatusCreated, got.status)
		r.now = r.now.Add(time.Hour)
	}
	got := r.post("adm", "/v1/plans", "k9", `{}`)
	require.Equal(t, http.StatusTooManyRequests, got.status)
	require.Contains(t, got.body, "idempotency_keys_exhausted")
	// A key already stored still replays at the cap.
	require.True(t, r.post("adm", "/v1/plans", "k0", `{}`).replayed)

	// Once the first expires, a new key is taken and the count stays
	// at the cap.
	r.now = r.now.Add(DefaultTTL - 3*time.Hour + time.Minute)
	got = r.post("adm", "/v1/plans", "k9", `{}`)
	require.Equal(t, http.StatusCreated, got.status)
	n, err := r.db.IdemCount(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
}

func TestBadKeyIsRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for _, key := range []string{strings.Repeat("a", MaxKeyLen+1),
		"tab\there", hex.EncodeToString([]byte{0xff}) + "\x7f"} {

		got := r.post("adm", "/v1/plans", key, `{}`)
		require.Equal(t, http.StatusBadRequest, got.status, key)
	}
	require.EqualValues(t, 0, r.runs.Load())
}

// TestUnansweredKeyPastItsTTLLosesItsSeed reproduces the second
// subscription: a create committed its effect and then failed with a 5xx
// (or the daemon died before its answer was stored), leaving its key begun
// but not done; a day later the prune (or the replacement of an expired
// record by the retry itself) dropped the record, and the client's retry
// executed with a new seed and created a second one. The record of a key
// whose effect was committed stays until a retry answers it.
func TestUnansweredKeyPastItsTTLLosesItsSeed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		pruned bool
	}{
		{"pruned by another key's request", true},
		{"replaced by its own retry", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.effect.Store(true)
			r.fail.Store(true)
			got := r.post("adm", "/v1/subscriptions", "k1", `{}`)
			require.Equal(t, http.StatusInternalServerError,
				got.status)
			seed1 := <-r.seeds
			require.Equal(t, 1, r.plans())

			r.restart()
			r.fail.Store(false)
			r.now = r.now.Add(DefaultTTL + time.Minute)
			plans := 1
			if tc.pruned {
				got = r.post("adm", "/v1/plans", "k2", `{}`)
				require.Equal(t, http.StatusCreated, got.status)
				<-r.seeds
				plans++
				require.Equal(t, plans, r.plans())
			}

			got = r.post("adm", "/v1/subscriptions", "k1", `{}`)
			require.Equal(t, http.StatusCreated, got.status)
			require.Equal(t, seed1, <-r.seeds, "the first seed")
			require.Equal(t, plans, r.plans(), "nothing made twice")

			// Answered now, it replays for a time to live from
			// now, and then expires like any other key.
			r.now = r.now.Add(DefaultTTL - time.Second)
			require.True(t, r.post("adm", "/v1/subscriptions", "k1",
				`{}`).replayed)
			r.now = r.now.Add(2 * time.Second)
			require.False(t, r.post("adm", "/v1/subscriptions", "k1",
				`{}`).replayed)
		})
	}
}

// TestUnansweredKeysWithoutEffectStillExpire: a key whose request failed
// before committing anything has no effect under its seed; it expires as
// before, and so does the cap it held. Kept keys (effect committed, never
// answered) leave the cap's count at their expiry, so a table full of
// begun keys frees after a time to live either way.
func TestUnansweredKeysWithoutEffectStillExpire(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.k.MaxKeys = 2
	r.fail.Store(true)
	require.Equal(t, http.StatusInternalServerError,
		r.post("adm", "/v1/plans", "none", `{}`).status)
	seedNone := <-r.seeds
	r.effect.Store(true)
	require.Equal(t, http.StatusInternalServerError,
		r.post("adm", "/v1/plans", "applied", `{}`).status)
	seedApplied := <-r.seeds
	require.Equal(t, http.StatusTooManyRequests,
		r.post("adm", "/v1/plans", "new", `{}`).status)

	r.now = r.now.Add(DefaultTTL + time.Minute)
	r.fail.Store(false)
	r.effect.Store(false)
	require.Equal(t, http.StatusCreated,
		r.post("adm", "/v1/plans", "new", `{}`).status)
	<-r.seeds
	n, err := r.db.IdemCount(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the new key counts")

	require.Equal(t, http.StatusCreated,
		r.post("adm", "/v1/plans", "none", `{}`).status)
	require.NotEqual(t, seedNone, <-r.seeds, "expired: a new key")
	require.Equal(t, http.StatusCreated,
		r.post("adm", "/v1/plans", "applied", `{}`).status)
	require.Equal(t, seedApplied, <-r.seeds, "kept: its first seed")
}

// TestKeyCapRefusedAStop reproduces the stuck subscription: with the key
// table full (some client sent a new key with every request), a cancel or
// pause with a key was refused with a 429, so nobody could stop a
// subscription. A stop is recorded in a reserve beyond the cap, and past
// that executed without its key being recorded; other requests are still
// refused, and requests without a key always pass.
func TestKeyCapRefusedAStop(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.k.MaxKeys, r.k.StopReserve = 2, 1
	for _, key := range []string{"a", "b"} {
		require.Equal(t, http.StatusCreated,
			r.post("adm", "/v1/plans", key, `{}`).status)
		<-r.seeds
	}
	require.Equal(t, http.StatusTooManyRequests,
		r.post("adm", "/v1/plans", "c", `{}`).status)
	require.Equal(t, http.StatusCreated,
		r.post("adm", "/v1/plans", "", `{}`).status, "no key")

	stop := func(key string) answer {
		req := httptest.NewRequest("POST", "/v1/subscriptions/s/cancel",
			nil)
		req.Header.Set("Authorization", "Bearer adm")
		req.Header.Set(Header, key)
		rec := httptest.NewRecorder()
		r.k.WrapStop(r.handler)(rec, req)
		return answer{rec.Code, rec.Body.String(),
			rec.Header().Get(ReplayedHeader) == "true"}
	}
	runs := r.runs.Load()
	first := stop("s1")
	require.Equal(t, http.StatusCreated, first.status)
	require.Equal(t, runs+1, r.runs.Load())
	again := stop("s1")
	require.True(t, again.replayed, "recorded in the reserve")
	require.Equal(t, first.body, again.body)

	// The reserve is full too: executed, not recorded.
	require.Equal(t, http.StatusCreated, stop("s2").status)
	require.Equal(t, http.StatusCreated, stop("s2").status)
	require.Equal(t, runs+3, r.runs.Load())
	require.Equal(t, http.StatusTooManyRequests,
		r.post("adm", "/v1/plans", "c", `{}`).status)
}

// TestEffectCommittedAfterItsKeyWasPruned reproduces a create committed
// with no key to remember it: a request still running when its key expired
// had its record pruned by another request, then committed its effect
// under a seed nobody keeps, so a retry would create a second one. The
// effect's transaction needs the key's record (it marks it applied): it
// fails, and nothing is created.
func TestEffectCommittedAfterItsKeyWasPruned(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.effect.Store(true)
	r.block = make(chan struct{})
	done := make(chan answer)
	go func() { done <- r.post("adm", "/v1/plans", "slow", `{}`) }()
	<-r.seeds // executing, before its effect

	r.now = r.now.Add(DefaultTTL + time.Minute)
	other := make(chan answer)
	go func() { other <- r.post("adm", "/v1/plans", "other", `{}`) }()
	<-r.seeds // "other" pruned "slow" on its way in
	close(r.block)
	require.Equal(t, http.StatusCreated, (<-other).status)
	got := <-done
	require.Equal(t, http.StatusInternalServerError, got.status, got.body)
	require.Contains(t, got.body, "idempotency key expired")
	require.Equal(t, 1, r.plans(), "only the other key's plan")
}
