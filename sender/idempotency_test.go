package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// idemAPI serves h's engine with Idempotency-Key handling, as the daemon
// does; called again after h.load() it is the restarted daemon's API.
func idemAPI(h *harness) http.Handler {
	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	api := &apiServer{engine: h.eng, log: btclog.Disabled,
		health: func() map[string]any { return nil }, tokens: tokens,
		idem: idem.New(h.db, btclog.Disabled)}
	return tokens.Middleware(api.routes())
}

func postWithKey(t *testing.T, srv http.Handler, key, body string) (int,
	string) {

	req := httptest.NewRequest("POST", "/v1/subscriptions",
		strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer adm")
	if key != "" {
		req.Header.Set(idem.Header, key)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	out, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return rec.Code, string(out)
}

// TestRetriedPlanOfferPOSTStartsOneSubscription reproduces the double
// payment: a POST of an open-enrolment offer retried (after a timeout, or
// after the daemon restarted) started a second paying subscription. With
// the same Idempotency-Key the retry gets the first answer, also across a
// restart and when both are sent at once; a different body is a 409.
func TestRetriedPlanOfferPOSTStartsOneSubscription(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	offer := testOffer(t, 1000, time.Hour, true)
	body := `{"offer":"` + offer + `","paused":true}`

	// Without a key a retry is a second subscription (why keys exist).
	c1, _ := postWithKey(t, idemAPI(h), "", body)
	c2, _ := postWithKey(t, idemAPI(h), "", body)
	require.Equal(t, []int{201, 201}, []int{c1, c2})
	require.Len(t, h.eng.List(""), 2)

	srv := idemAPI(h)
	code, first := postWithKey(t, srv, "retry-1", body)
	require.Equal(t, http.StatusCreated, code, first)
	require.Len(t, h.eng.List(""), 3)

	// The daemon restarts; the client retries.
	h.stop()
	h.load()
	h.run()
	srv = idemAPI(h)
	code, again := postWithKey(t, srv, "retry-1", body)
	require.Equal(t, http.StatusCreated, code)
	require.Equal(t, first, again)
	require.Len(t, h.eng.List(""), 3)

	// Same key, another body.
	code, out := postWithKey(t, srv, "retry-1",
		`{"offer":"`+offer+`","paused":false}`)
	require.Equal(t, http.StatusConflict, code, out)
	require.Contains(t, out, "idempotency_key_reused")

	// Two identical requests at once: one executes.
	var (
		wg    sync.WaitGroup
		codes [2]int
		outs  [2]string
	)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], outs[i] = postWithKey(t, srv, "together", body)
		}()
	}
	wg.Wait()
	require.Equal(t, [2]int{201, 201}, codes)
	require.Equal(t, outs[0], outs[1])
	require.Len(t, h.eng.List(""), 4)
}

// TestAddExecutedAgainUnderOneKeyFindsItsSubscription: a daemon that
// stopped after adding the subscription but before storing the response
// executes the retry again; the seeded id finds the first subscription.
func TestAddExecutedAgainUnderOneKeyFindsItsSubscription(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	offer := testOffer(t, 1000, time.Hour, true)
	ctx := idem.WithSeed(context.Background(), [16]byte{7})
	v1, err := h.eng.Add(ctx, offer, TermsRequest{}, true)
	require.NoError(t, err)
	h.stop()
	h.load()
	h.run()
	v2, err := h.eng.Add(ctx, offer, TermsRequest{}, true)
	require.NoError(t, err)
	require.Equal(t, v1.ID, v2.ID)
	require.Len(t, h.eng.List(""), 1)
}

// finishLost is a ledger whose recording of a key's answer never happens,
// as when the daemon dies after the handler's effect and before the answer
// is stored.
type finishLost struct{ *store.DB }

func (finishLost) IdemFinish(context.Context, *store.IdemRecord,
	time.Time) error {

	return errors.New("the daemon died before the answer was stored")
}

// TestPauseRetriedAfterResumeUndoesTheResume reproduces the out-of-order
// replay: a pause (key K1) was applied but its answer never stored, the
// payer then resumed (K2), and the client's retry of K1 executed the pause
// again, stopping a subscription the payer had resumed. A key whose effect
// was committed is not applied a second time: the retry answers the
// subscription as it is now. The same holds for a cancel, whose retry
// answered 409 (already cancelled) instead of the cancelled subscription.
func TestPauseRetriedAfterResumeUndoesTheResume(t *testing.T) {
	h := newHarness(t, nil)
	offer := testOffer(t, 1000, time.Hour, true)
	v, err := h.eng.Add(context.Background(), offer, TermsRequest{}, false)
	require.NoError(t, err)
	sub := "/v1/subscriptions/" + v.ID

	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	serve := func(st idem.Store) http.Handler {
		api := &apiServer{engine: h.eng, log: btclog.Disabled,
			health: func() map[string]any { return nil },
			tokens: tokens, idem: idem.New(st, btclog.Disabled)}
		return tokens.Middleware(api.routes())
	}
	post := func(srv http.Handler, path, key string) (int, string) {
		req := httptest.NewRequest("POST", path, nil)
		req.Header.Set("Authorization", "Bearer adm")
		req.Header.Set(idem.Header, key)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	code, out := post(serve(finishLost{h.db}), sub+"/pause", "K1")
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, "paused", h.eng.List("")[0].State)

	// The daemon restarts; the payer resumes.
	h.load()
	srv := serve(h.db)
	code, out = post(srv, sub+"/resume", "K2")
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, "active", h.eng.List("")[0].State)

	// The client retries K1: the pause it asked for was applied before
	// the resume; applying it again would undo the resume.
	code, out = post(srv, sub+"/pause", "K1")
	require.Equal(t, http.StatusOK, code, out)
	require.Contains(t, out, `"state": "active"`)
	require.Equal(t, "active", h.eng.List("")[0].State)
	// Its answer is recorded now.
	code, again := post(srv, sub+"/pause", "K1")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, out, again)

	// A cancel applied but not answered: the retry answers the
	// cancelled subscription, not a 409.
	code, out = post(serve(finishLost{h.db}), sub+"/cancel", "K3")
	require.Equal(t, http.StatusOK, code, out)
	h.load()
	code, again = post(serve(h.db), sub+"/cancel", "K3")
	require.Equal(t, http.StatusOK, code, again)
	require.Contains(t, again, `"state": "cancelled"`)
}

// TestKeyCapRefusedPayerPauseAndCancel reproduces the payer who could not
// stop paying: once some client had filled the key table, a pause or a
// cancel sent with an Idempotency-Key was refused with a 429 like any new
// key. Stops pass the cap (recorded in a reserve, then unrecorded); a new
// key of another request is still refused; the read-only token can't
// record keys at all (its POSTs are refused before the keeper).
func TestKeyCapRefusedPayerPauseAndCancel(t *testing.T) {
	h := newHarness(t, nil)
	offer := testOffer(t, 1000, time.Hour, true)
	v, err := h.eng.Add(context.Background(), offer, TermsRequest{}, false)
	require.NoError(t, err)
	sub := "/v1/subscriptions/" + v.ID

	tokens := common.Tokens{Admin: "adm", ReadOnly: "ro"}
	keeper := idem.New(h.db, btclog.Disabled)
	keeper.MaxKeys, keeper.StopReserve = 2, 1
	api := &apiServer{engine: h.eng, log: btclog.Disabled,
		health: func() map[string]any { return nil }, tokens: tokens,
		idem: keeper}
	srv := tokens.Middleware(api.routes())
	post := func(token, path, key, body string) (int, string) {
		req := httptest.NewRequest("POST", path,
			strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(idem.Header, key)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	count := func() uint64 {
		n, err := h.db.IdemCount(context.Background())
		require.NoError(t, err)
		return n
	}

	// The read-only token can't fill the table.
	for i := range 5 {
		code, _ := post("ro", "/v1/subscriptions", fmt.Sprint("ro", i),
			`{}`)
		require.Equal(t, http.StatusForbidden, code)
	}
	require.Zero(t, count())

	// A client fills it.
	for _, key := range []string{"f1", "f2"} {
		code, out := post("adm", "/v1/subscriptions", key, `{}`)
		require.Equal(t, http.StatusBadRequest, code, out)
	}
	code, out := post("adm", "/v1/subscriptions", "f3", `{}`)
	require.Equal(t, http.StatusTooManyRequests, code, out)

	code, out = post("adm", sub+"/pause", "pause-1", "")
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, "paused", h.eng.List("")[0].State)
	code, out = post("adm", sub+"/cancel", "cancel-1", "")
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, "cancelled", h.eng.List("")[0].State)
	require.EqualValues(t, 3, count(), "the pause in the reserve")
}
