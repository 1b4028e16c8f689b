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
	seeds chan [16]byte
	now   time.Time
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
	if r.fail.Load() {
		common.WriteError(w, http.StatusInternalServerError, "internal",
			"", "boom")
		return
	}
	common.WriteJSON(w, http.StatusCreated, map[string]any{
		"run": n, "at": time.Now().UnixNano(), "echo": string(body),
	})
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
