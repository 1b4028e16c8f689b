package sender

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// apiServer serves the sender's HTTPS API (docs/api-sender.md).
type apiServer struct {
	engine *Engine
	log    btclog.Logger
	health func() map[string]any
	// tokens tell the admin, who sees each subscription's secret and
	// offer, from the read-only token, which sees neither.
	tokens common.Tokens
}

// termsBody is the JSON form of TermsRequest. Durations are Go duration
// strings ("1h", "15m"); amounts are msat.
type termsBody struct {
	Preset      string  `json:"preset,omitempty"`
	Increment   *string `json:"increment,omitempty"`
	Buffer      *string `json:"buffer,omitempty"`
	MaxPerDay   *uint64 `json:"max_per_day_msat,omitempty"`
	MaxTotal    *uint64 `json:"max_total_msat,omitempty"`
	MaxPrice    *uint64 `json:"max_price_msat_per_sec,omitempty"`
	FeeLimitPPM *uint32 `json:"fee_limit_ppm,omitempty"`
	FeeLimit    *uint64 `json:"fee_limit_msat,omitempty"`
}

// addBody is the body of POST /v1/subscriptions.
type addBody struct {
	Offer  string `json:"offer"`
	Paused bool   `json:"paused,omitempty"`
	termsBody
}

// cancelBody is the optional body of POST .../cancel.
type cancelBody struct {
	// NotifyReceiver sends the protocol's cancel message (default true).
	NotifyReceiver *bool `json:"notify_receiver,omitempty"`
}

func (b *termsBody) request() (TermsRequest, error) {
	req := TermsRequest{Preset: b.Preset, FeeLimitPPM: b.FeeLimitPPM}
	for _, f := range []struct {
		name string
		in   *string
		out  **time.Duration
	}{
		{"increment", b.Increment, &req.Increment},
		{"buffer", b.Buffer, &req.Buffer},
	} {
		if f.in == nil {
			continue
		}
		d, err := time.ParseDuration(*f.in)
		if err != nil {
			return req, &common.APIError{Code: "bad_request",
				Field: f.name, Message: fmt.Sprintf("%q is not "+
					"a duration like 90s, 15m or 1h", *f.in)}
		}
		*f.out = &d
	}
	for _, f := range []struct {
		in  *uint64
		out **lnwire.MilliSatoshi
	}{
		{b.MaxPerDay, &req.MaxPerDay}, {b.MaxTotal, &req.MaxTotal},
		{b.MaxPrice, &req.MaxPrice}, {b.FeeLimit, &req.FeeLimit},
	} {
		if f.in != nil {
			*f.out = msat(*f.in)
		}
	}
	return req, nil
}

// routes maps the endpoints.
func (a *apiServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		common.WriteJSON(w, http.StatusOK, a.health())
	})
	mux.HandleFunc("GET /v1/subscriptions", a.list)
	mux.HandleFunc("POST /v1/subscriptions", a.add)
	mux.HandleFunc("GET /v1/subscriptions/{id}", a.get)
	mux.HandleFunc("PATCH /v1/subscriptions/{id}", a.change)
	mux.HandleFunc("POST /v1/subscriptions/{id}/pause", a.action(OpPause))
	mux.HandleFunc("POST /v1/subscriptions/{id}/resume", a.action(OpResume))
	mux.HandleFunc("POST /v1/subscriptions/{id}/cancel", a.action(OpCancel))
	mux.HandleFunc("GET /v1/subscriptions/{id}/payments", a.payments)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		common.WriteError(w, http.StatusNotFound, "not_found", "",
			r.Method+" "+r.URL.Path+" is not an endpoint")
	})
	return mux
}

// fail writes an error as the API's JSON error, mapping our sentinels to
// status codes.
func (a *apiServer) fail(w http.ResponseWriter, err error) {
	var apiErr *common.APIError
	switch {
	case errors.As(err, &apiErr):
		status := http.StatusBadRequest
		if apiErr.Code == "forbidden" {
			status = http.StatusForbidden
		}
		common.WriteError(w, status, apiErr.Code, apiErr.Field,
			apiErr.Message)
	case errors.Is(err, tlv.ErrBadOffer):
		common.WriteError(w, http.StatusBadRequest, "bad_offer",
			"offer", err.Error())
	case errors.Is(err, ErrBadTerms):
		common.WriteError(w, http.StatusBadRequest, "bad_terms", "",
			err.Error())
	case errors.Is(err, ErrNotFound):
		common.WriteError(w, http.StatusNotFound, "not_found", "id",
			err.Error())
	case errors.Is(err, ErrExists):
		common.WriteError(w, http.StatusConflict, "exists", "offer",
			err.Error())
	case errors.Is(err, ErrBadState):
		common.WriteError(w, http.StatusConflict, "bad_state", "",
			err.Error())
	default:
		common.WriteInternalError(w, a.log, err)
	}
}

// subID reads the {id} path value: the public id ("sub_...") with any
// token, or the secret subscription id (hex, as in the offer) with the
// admin token only, as on the receiver.
func (a *apiServer) subID(r *http.Request) (store.SubID, error) {
	raw := r.PathValue("id")
	if tlv.IsPublicID(raw) {
		pub, err := tlv.ParsePublicID(raw)
		if err != nil {
			return store.SubID{}, &common.APIError{Code: "bad_request",
				Field: "id", Message: err.Error()}
		}
		return a.engine.ByPublicID(pub)
	}
	id, err := tlv.ParseSubscriptionID(raw)
	if err != nil {
		return store.SubID{}, &common.APIError{Code: "bad_request",
			Field: "id", Message: "subscription id must be its " +
				"public id (sub_ and 32 hex characters)"}
	}
	if !a.admin(r) {
		return store.SubID{}, errSecretReadOnly
	}
	return store.SubID(id), nil
}

// errSecretReadOnly answers a read-only caller who named a subscription by
// its secret.
var errSecretReadOnly = &common.APIError{Code: "forbidden", Field: "id",
	Message: "the read-only token names subscriptions by their public " +
		"id (sub_...), not by their secret"}

// admin reports whether the request carries the admin token.
func (a *apiServer) admin(r *http.Request) bool {
	return a.tokens.Check(r) == common.AccessAdmin
}

// shown is v as the caller may see it: without the secret and the offer
// (which holds the secret of a personal offer) unless the caller is the
// admin, as loop's read-only macaroon sees swaps but no preimages.
func (a *apiServer) shown(r *http.Request, v *View) *View {
	if v == nil || a.admin(r) {
		return v
	}
	c := *v
	c.Secret, c.Offer = "", ""
	return &c
}

func (a *apiServer) list(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	switch state {
	case "", StateActive, StatePaused, StateWaiting, StateRefused,
		StateCapReached, StateCancelled:
	default:
		common.WriteError(w, http.StatusBadRequest, "bad_request",
			"state", fmt.Sprintf("unknown state %q", state))
		return
	}
	views := a.engine.List(state)
	for i, v := range views {
		views[i] = a.shown(r, v)
	}
	common.WriteJSON(w, http.StatusOK, map[string]any{
		"subscriptions": views,
	})
}

func (a *apiServer) add(w http.ResponseWriter, r *http.Request) {
	var body addBody
	if err := common.DecodeJSON(r, &body); err != nil {
		a.fail(w, err)
		return
	}
	if body.Offer == "" {
		common.WriteError(w, http.StatusBadRequest, "bad_request",
			"offer", "offer is required")
		return
	}
	req, err := body.request()
	if err != nil {
		a.fail(w, err)
		return
	}
	v, err := a.engine.Add(r.Context(), body.Offer, req, body.Paused)
	if err != nil {
		a.fail(w, err)
		return
	}
	common.WriteJSON(w, http.StatusCreated, a.shown(r, v))
}

func (a *apiServer) get(w http.ResponseWriter, r *http.Request) {
	id, err := a.subID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	v, err := a.engine.Get(id)
	if err != nil {
		a.fail(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, a.shown(r, v))
}

func (a *apiServer) change(w http.ResponseWriter, r *http.Request) {
	id, err := a.subID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var body termsBody
	if err := common.DecodeJSON(r, &body); err != nil {
		a.fail(w, err)
		return
	}
	if body.Preset != "" {
		common.WriteError(w, http.StatusBadRequest, "bad_request",
			"preset", "presets apply when adding a subscription; "+
				"change increment or buffer instead")
		return
	}
	req, err := body.request()
	if err != nil {
		a.fail(w, err)
		return
	}
	v, err := a.engine.ChangeTerms(r.Context(), id, req)
	if err != nil {
		a.fail(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, a.shown(r, v))
}

func (a *apiServer) action(op Op) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := a.subID(r)
		if err != nil {
			a.fail(w, err)
			return
		}
		notify := true
		if op == OpCancel && r.ContentLength != 0 {
			var body cancelBody
			if err := common.DecodeJSON(r, &body); err != nil {
				a.fail(w, err)
				return
			}
			if body.NotifyReceiver != nil {
				notify = *body.NotifyReceiver
			}
		}
		v, err := a.engine.Apply(r.Context(), id, op, notify)
		if err != nil {
			a.fail(w, err)
			return
		}
		common.WriteJSON(w, http.StatusOK, a.shown(r, v))
	}
}

func (a *apiServer) payments(w http.ResponseWriter, r *http.Request) {
	id, err := a.subID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	q := r.URL.Query()
	after, limit := uint64(0), 100
	if s := q.Get("after"); s != "" {
		after, err = strconv.ParseUint(s, 10, 64)
		if err != nil {
			common.WriteError(w, http.StatusBadRequest,
				"bad_request", "after", fmt.Sprintf("%q is not "+
					"a sequence number", s))
			return
		}
	}
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > 1000 {
			common.WriteError(w, http.StatusBadRequest,
				"bad_request", "limit", fmt.Sprintf("%q must "+
					"be 1..1000", s))
			return
		}
	}
	v, err := a.engine.Payments(r.Context(), id, after, limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, v)
}
