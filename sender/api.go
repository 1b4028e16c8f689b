package sender

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/docs"
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
	// idem handles the Idempotency-Key of every POST (nil: ignored).
	idem *idem.Keeper
}

// termsBody is the JSON form of TermsRequest: durations are integer
// seconds (*_sec), amounts msat (*_msat), as on the receiver.
type termsBody struct {
	Preset       string  `json:"preset,omitempty"`
	IncrementSec *uint64 `json:"increment_sec,omitempty"`
	BufferSec    *uint64 `json:"buffer_sec,omitempty"`
	MaxPerDay    *uint64 `json:"max_per_day_msat,omitempty"`
	MaxTotal     *uint64 `json:"max_total_msat,omitempty"`
	MaxPrice     *uint64 `json:"max_price_msat_per_sec,omitempty"`
	FeeLimitPPM  *uint32 `json:"fee_limit_ppm,omitempty"`
	FeeLimit     *uint64 `json:"fee_limit_msat,omitempty"`

	// OldIncrement and OldBuffer are the Go duration strings of API
	// versions before 2026-11-29, refused with the new name.
	OldIncrement json.RawMessage `json:"increment,omitempty"`
	OldBuffer    json.RawMessage `json:"buffer,omitempty"`
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

// maxTermSeconds bounds the *_sec fields (a tu32 in the protocol).
const maxTermSeconds = 1<<32 - 1

func (b *termsBody) request() (TermsRequest, error) {
	req := TermsRequest{Preset: b.Preset, FeeLimitPPM: b.FeeLimitPPM}
	if b.OldIncrement != nil {
		return req, invalidField("increment", "is now increment_sec, "+
			"an integer number of seconds (e.g. 60 for 1m)")
	}
	if b.OldBuffer != nil {
		return req, invalidField("buffer", "is now buffer_sec, an "+
			"integer number of seconds (e.g. 900 for 15m)")
	}
	for _, f := range []struct {
		name string
		in   *uint64
		out  **time.Duration
	}{
		{"increment_sec", b.IncrementSec, &req.Increment},
		{"buffer_sec", b.BufferSec, &req.Buffer},
	} {
		if f.in == nil {
			continue
		}
		if *f.in > maxTermSeconds {
			return req, invalidField(f.name, "must be at most "+
				"4294967295 seconds")
		}
		d := time.Duration(*f.in) * time.Second
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

// invalidField is the API's error for a request field with a bad value.
func invalidField(field, msg string) error {
	return &common.APIError{Code: "invalid_field", Field: field,
		Message: msg}
}

// apiRoute is one endpoint of the API.
type apiRoute struct {
	pattern string
	handler http.HandlerFunc
}

// routeList lists the endpoints in one place (the OpenAPI test checks
// docs/openapi-sender.json against it).
func (a *apiServer) routeList() []apiRoute {
	return []apiRoute{
		{"GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
			common.WriteJSON(w, http.StatusOK, a.health())
		}},
		{"GET /v1/openapi.json", func(w http.ResponseWriter,
			_ *http.Request) {

			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(docs.OpenAPISender)
		}},
		{"GET /v1/subscriptions", a.list},
		{"POST /v1/subscriptions", a.add},
		{"GET /v1/subscriptions/{id}", a.get},
		{"PATCH /v1/subscriptions/{id}", a.change},
		{"POST /v1/subscriptions/{id}/pause", a.action(OpPause)},
		{"POST /v1/subscriptions/{id}/resume", a.action(OpResume)},
		{"POST /v1/subscriptions/{id}/cancel", a.action(OpCancel)},
		{"GET /v1/subscriptions/{id}/payments", a.payments},
	}
}

// routes maps the endpoints; every POST gets Idempotency-Key handling.
func (a *apiServer) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routeList() {
		h := rt.handler
		if strings.HasPrefix(rt.pattern, "POST ") {
			h = a.post(h, strings.HasSuffix(rt.pattern, "/pause") ||
				strings.HasSuffix(rt.pattern, "/cancel"))
		}
		mux.HandleFunc(rt.pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		common.WriteError(w, http.StatusNotFound, "not_found", "",
			r.Method+" "+r.URL.Path+" is not an endpoint")
	})
	return mux
}

// post adds Idempotency-Key handling to a POST handler; a stop (pause,
// cancel) is never refused for the key cap.
func (a *apiServer) post(h http.HandlerFunc, stop bool) http.HandlerFunc {
	switch {
	case a.idem == nil:
		return h
	case stop:
		return a.idem.WrapStop(h)
	}
	return a.idem.Wrap(h)
}

// fail writes an error as the API's JSON error, mapping our sentinels to
// status codes.
func (a *apiServer) fail(w http.ResponseWriter, err error) {
	var apiErr *common.APIError
	switch {
	case errors.As(err, &apiErr):
		status := http.StatusBadRequest
		switch apiErr.Code {
		case "forbidden":
			status = http.StatusForbidden
		case "not_found":
			status = http.StatusNotFound
		case "conflict":
			status = http.StatusConflict
		}
		common.WriteError(w, status, apiErr.Code, apiErr.Field,
			apiErr.Message)
	case errors.Is(err, tlv.ErrBadOffer):
		common.WriteError(w, http.StatusBadRequest, "invalid_field",
			"offer", err.Error())
	case errors.Is(err, ErrBadTerms):
		common.WriteError(w, http.StatusBadRequest, "invalid_field", "",
			err.Error())
	case errors.Is(err, ErrNotFound):
		common.WriteError(w, http.StatusNotFound, "not_found", "id",
			err.Error())
	case errors.Is(err, ErrExists):
		common.WriteError(w, http.StatusConflict, "conflict", "offer",
			err.Error())
	case errors.Is(err, ErrBadState):
		common.WriteError(w, http.StatusConflict, "conflict", "",
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
			return store.SubID{}, invalidField("id", err.Error())
		}
		return a.engine.ByPublicID(pub)
	}
	id, err := tlv.ParseSubscriptionID(raw)
	if err != nil {
		return store.SubID{}, invalidField("id", "subscription id "+
			"must be its public id (sub_ and 32 hex characters)")
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

// list pages the subscriptions in public id order: after= a public id,
// limit= 1..1000 (100), next_after in the answer while more may follow.
func (a *apiServer) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", StateActive, StatePaused, StateWaiting, StateRefused,
		StateCapReached, StateCancelled:
	default:
		a.fail(w, invalidField("state", fmt.Sprintf("unknown state %q",
			state)))
		return
	}
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		a.fail(w, err)
		return
	}
	after := q.Get("after")
	views := []*View{}
	for _, v := range a.engine.List(state) {
		if v.ID <= after {
			continue
		}
		if len(views) == limit {
			break
		}
		views = append(views, a.shown(r, v))
	}
	resp := map[string]any{"subscriptions": views}
	if len(views) == limit {
		resp["next_after"] = views[len(views)-1].ID
	}
	common.WriteJSON(w, http.StatusOK, resp)
}

func (a *apiServer) add(w http.ResponseWriter, r *http.Request) {
	var body addBody
	if err := common.DecodeJSON(r, &body); err != nil {
		a.fail(w, err)
		return
	}
	if body.Offer == "" {
		a.fail(w, invalidField("offer", "is required"))
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
		a.fail(w, invalidField("preset", "presets apply when adding "+
			"a subscription; change increment_sec or buffer_sec "+
			"instead"))
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
		if idem.Applied(r.Context()) {
			// A retry of a key whose change was committed (its
			// answer was lost in a crash or a 5xx): the state may
			// have moved on since (a pause, then a resume, then
			// this pause's retry), so it is not changed again;
			// the answer is the subscription as it is now.
			v, err := a.engine.Get(id)
			if err != nil {
				a.fail(w, err)
				return
			}
			common.WriteJSON(w, http.StatusOK, a.shown(r, v))
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
	after := uint64(0)
	if s := q.Get("after"); s != "" {
		after, err = strconv.ParseUint(s, 10, 64)
		if err != nil {
			a.fail(w, invalidField("after", fmt.Sprintf("%q is not "+
				"a sequence number", s)))
			return
		}
	}
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		a.fail(w, err)
		return
	}
	v, err := a.engine.Payments(r.Context(), id, after, limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, v)
}
