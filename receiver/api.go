package receiver

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/common/dashboard"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/docs"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// maxTermSeconds bounds durations given to the API (the offer's tu32).
const maxTermSeconds = 1<<32 - 1

// apiServer holds the provider API's handlers.
type apiServer struct {
	db     store.ReceiverStore
	log    btclog.Logger
	now    func() time.Time
	node   func() (route.Vertex, bool)
	health func() map[string]any
	tokens common.Tokens
	notify func()
	// network is lnd's Bitcoin network, shown in every event.
	network string
	// idem handles the Idempotency-Key of every POST (nil: ignored,
	// for tests of single handlers).
	idem *idem.Keeper
	// webhookURLs are the configured webhook endpoints, whose
	// per-endpoint delivery state events show.
	webhookURLs []string
	// webhookRetried tells the dispatcher that a manual retry made an
	// event pending again (nil: no dispatcher).
	webhookRetried func(store.EventID)
	// extraNodes are the provider's other nodes (--offer.extranode),
	// listed in offers after this node.
	extraNodes []route.Vertex
	// paidIdx answers the paid check from memory (nil: from a View;
	// receivers sharing a PostgreSQL ledger).
	paidIdx *paidIndex

	// events wakes the long polls of GET /v1/events after a step that
	// queued an event (nil: they only read again every eventReread).
	events *dashboard.Notifier
	// eventReread is how often a long poll reads again without a
	// wake-up (0: eventRereadBadger): events appended by the other
	// receivers of a PostgreSQL cluster.
	eventReread time.Duration
	// eventWatch is that re-read, shared by the long polls that follow
	// the whole list.
	eventWatch eventWatch
	// maxEventWait bounds a long poll inside the server's write
	// timeout (0: wait_sec as asked).
	maxEventWait time.Duration
	// done ends the long polls when the daemon stops (nil: never), so
	// they do not hold the server's shutdown.
	done <-chan struct{}
}

// apiRoute is one endpoint of the API.
type apiRoute struct {
	pattern string
	handler func(*apiServer) http.HandlerFunc
}

// routes lists the API's endpoints in one place, so a test can call every
// GET route with the read-only token.
func (s *apiServer) routes() []apiRoute {
	h := func(f func(*apiServer, http.ResponseWriter, *http.Request)) func(
		*apiServer) http.HandlerFunc {

		return func(s *apiServer) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { f(s, w, r) }
		}
	}
	return []apiRoute{
		{"GET /v1/health", h((*apiServer).getHealth)},
		{"POST /v1/plans", h((*apiServer).createPlan)},
		{"GET /v1/plans", h((*apiServer).listPlans)},
		{"GET /v1/plans/{id}", h((*apiServer).getPlan)},
		{"PATCH /v1/plans/{id}", h((*apiServer).updatePlan)},
		{"POST /v1/subscriptions", h((*apiServer).createSubscription)},
		{"GET /v1/subscriptions", h((*apiServer).listSubscriptions)},
		{"GET /v1/subscriptions/{id}", h((*apiServer).getSubscription)},
		{"PATCH /v1/subscriptions/{id}", h((*apiServer).updateSubscription)},
		{"GET /v1/subscriptions/{id}/paid", h((*apiServer).getPaid)},
		{"GET /v1/subscriptions/{id}/offer", h((*apiServer).getOffer)},
		{"POST /v1/subscriptions/{id}/cancel", h((*apiServer).cancelSubscription)},
		{"GET /v1/subscriptions/{id}/payments", h((*apiServer).listPayments)},
		{"GET /v1/payments/{hash}", h((*apiServer).getPayment)},
		{"GET /v1/events", h((*apiServer).listEvents)},
		{"GET /v1/refusals", h((*apiServer).listRefusals)},
		{"POST /v1/webhooks/events/{id}/retry", h((*apiServer).retryEvent)},
		{"GET /v1/webhooks/dead", h((*apiServer).listDeadLetters)},
		{"GET /v1/openapi.json", h((*apiServer).getOpenAPI)},
	}
}

// handler returns the authenticated router.
func (s *apiServer) handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.routes() {
		h := r.handler(s)
		switch {
		case s.idem == nil || !strings.HasPrefix(r.pattern, "POST "):
		case strings.HasSuffix(r.pattern, "/cancel"):
			// A cancel is never refused for the key cap.
			h = s.idem.WrapStop(h)
		default:
			h = s.idem.Wrap(h)
		}
		mux.HandleFunc(r.pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		common.WriteError(w, http.StatusNotFound, "not_found", "",
			"no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s.tokens.Middleware(mux)
}

// writeErr maps an error to a JSON error response.
func (s *apiServer) writeErr(w http.ResponseWriter, err error) {
	var apiErr *common.APIError
	switch {
	case errors.As(err, &apiErr):
		status := http.StatusBadRequest
		switch apiErr.Code {
		case "not_found":
			status = http.StatusNotFound
		case "conflict":
			status = http.StatusConflict
		case "forbidden":
			status = http.StatusForbidden
		}
		common.WriteError(w, status, apiErr.Code, apiErr.Field, apiErr.Message)
	case errors.Is(err, store.ErrNotFound):
		common.WriteError(w, http.StatusNotFound, "not_found", "", err.Error())
	case errors.Is(err, core.ErrTransition):
		common.WriteError(w, http.StatusConflict, "conflict", "", err.Error())
	default:
		common.WriteInternalError(w, s.log, err)
	}
}

// decodeJSON is common.DecodeJSON with field paths as the client wrote
// them (without the name of the embedded Go struct).
func decodeJSON(r *http.Request, v any) error {
	err := common.DecodeJSON(r, v)
	var apiErr *common.APIError
	if errors.As(err, &apiErr) {
		apiErr.Field = strings.ReplaceAll(apiErr.Field, "termsInput.", "")
	}
	return err
}

func badField(field, msg string) error {
	return &common.APIError{Code: "invalid_field", Field: field, Message: msg}
}

func notFound(what string) error {
	return &common.APIError{Code: "not_found", Message: what + " not found"}
}

// termsInput is the JSON form of terms in requests; nil fields are left
// unchanged (updates) or take defaults (creation).
type termsInput struct {
	PriceMsatPerSec *uint64 `json:"price_msat_per_sec"`
	MinPaymentMsat  *uint64 `json:"min_payment_msat"`
	// IncrementMsat is no longer supported; 0 (what it now always is)
	// is accepted so old clients keep working, anything else is a 400.
	IncrementMsat       *uint64 `json:"increment_msat"`
	GracePeriodSec      *uint64 `json:"grace_period_sec"`
	MaxPrepaySec        *uint64 `json:"max_prepay_sec"`
	DefaultIncrementSec *uint64 `json:"default_increment_sec"`
}

// apply writes the given fields into t (and the default increment into
// inc) and validates the result, naming the bad field.
func (in *termsInput) apply(t *store.Terms, inc *time.Duration) error {
	secs := func(field string, v *uint64, d *time.Duration) error {
		if v == nil {
			return nil
		}
		if *v > maxTermSeconds {
			return badField(field, "must be at most 4294967295 seconds")
		}
		*d = time.Duration(*v) * time.Second
		return nil
	}
	if in.PriceMsatPerSec != nil {
		t.RatePerSecond = lnwire.MilliSatoshi(*in.PriceMsatPerSec)
	}
	if in.MinPaymentMsat != nil {
		t.MinPayment = lnwire.MilliSatoshi(*in.MinPaymentMsat)
	}
	if in.IncrementMsat != nil && *in.IncrementMsat != 0 {
		return badField("increment_msat", "is no longer supported: "+
			"every amount from min_payment_msat up is accepted; "+
			"remove the field")
	}
	if err := secs("grace_period_sec", in.GracePeriodSec, &t.Grace); err != nil {
		return err
	}
	if err := secs("max_prepay_sec", in.MaxPrepaySec, &t.MaxPrepay); err != nil {
		return err
	}
	if inc != nil {
		if err := secs("default_increment_sec", in.DefaultIncrementSec,
			inc); err != nil {
			return err
		}
	} else if in.DefaultIncrementSec != nil {
		return badField("default_increment_sec", "can only be set on a plan")
	}
	return validateTerms(*t, inc)
}

// maxMsat is the largest amount a term may name, math.MaxInt64.
const maxMsat = "9223372036854775807"

// validateTerms checks terms against the offer rules (docs/protocol.md).
func validateTerms(t store.Terms, inc *time.Duration) error {
	switch {
	case t.RatePerSecond == 0:
		return badField("price_msat_per_sec", "must be greater than 0")
	// Amounts above int64 are more than all bitcoin and the PostgreSQL
	// ledger can't hold them: refused alike on every backend.
	case t.RatePerSecond > math.MaxInt64:
		return badField("price_msat_per_sec", "must not exceed "+maxMsat)
	case t.MinPayment > math.MaxInt64:
		return badField("min_payment_msat", "must not exceed "+maxMsat)
	case t.Increment > math.MaxInt64:
		return badField("increment_msat", "must not exceed "+maxMsat)
	case t.MaxPrepay < time.Second:
		return badField("max_prepay_sec", "must be at least 1")
	case inc != nil && *inc < time.Second:
		return badField("default_increment_sec", "must be at least 1")
	case inc != nil && *inc > t.MaxPrepay:
		return badField("default_increment_sec",
			"must not exceed max_prepay_sec")
	}
	hi, maxAmt := bits.Mul64(uint64(t.RatePerSecond),
		uint64(t.MaxPrepay/time.Second))
	if hi == 0 && uint64(t.MinPayment) > maxAmt {
		return badField("min_payment_msat", "exceeds price_msat_per_sec "+
			"* max_prepay_sec = "+strconv.FormatUint(maxAmt, 10)+
			": no payment could be accepted")
	}
	return nil
}

// planView is the JSON form of a plan.
type planView struct {
	ID                  string         `json:"id"`
	Label               string         `json:"label,omitempty"`
	OpenEnrolment       bool           `json:"open_enrolment"`
	Terms               core.TermsView `json:"terms"`
	DefaultIncrementSec uint64         `json:"default_increment_sec"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           time.Time      `json:"updated_at"`
	Offer               string         `json:"offer,omitempty"`
}

func (s *apiServer) planView(p *store.Plan) planView {
	v := planView{
		ID:                  string(p.ID),
		Label:               p.Label,
		OpenEnrolment:       p.OpenEnrolment,
		Terms:               core.NewTermsView(p.Terms),
		DefaultIncrementSec: uint64(p.DefaultIncrement / time.Second),
		CreatedAt:           p.CreatedAt.UTC(),
		UpdatedAt:           p.UpdatedAt.UTC(),
	}
	if p.OpenEnrolment {
		if pid, err := tlv.ParsePlanID(string(p.ID)); err == nil {
			v.Offer = s.offer(p, p.Terms, nil, &pid)
		}
	}
	return v
}

// offer renders an offer string, or "" if lnd's key is not known yet.
func (s *apiServer) offer(p *store.Plan, t store.Terms,
	sub *tlv.SubscriptionID, plan *tlv.PlanID) string {

	node, ok := s.node()
	if !ok {
		return ""
	}
	o := &tlv.Offer{
		Node:             node,
		ExtraNodes:       offerExtraNodes(node, s.extraNodes),
		SubscriptionID:   sub,
		PlanID:           plan,
		PriceMsatPerSec:  t.RatePerSecond,
		MinPayment:       t.MinPayment,
		DefaultIncrement: p.DefaultIncrement,
		GracePeriod:      t.Grace,
		MaxPrepay:        t.MaxPrepay,
		Label:            p.Label,
	}
	if o.DefaultIncrement > o.MaxPrepay {
		o.DefaultIncrement = o.MaxPrepay
	}
	if err := o.Validate(); err != nil {
		s.log.Warnf("offer for plan %s is not valid: %v", p.ID, err)
		return ""
	}
	return o.String()
}

type planRequest struct {
	Label         *string `json:"label"`
	OpenEnrolment *bool   `json:"open_enrolment"`
	termsInput
}

func (s *apiServer) createPlan(w http.ResponseWriter, r *http.Request) {
	var req planRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	now := s.now()
	pid, err := tlv.NewPlanID()
	if seeded, ok := idem.SeededID(r.Context(), "plan"); ok {
		pid = tlv.PlanID(seeded)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	p := &store.Plan{
		ID:               store.PlanID(pid.String()),
		CreatedAt:        now,
		UpdatedAt:        now,
		DefaultIncrement: time.Minute,
		Terms: store.Terms{
			MaxPrepay: time.Hour,
		},
	}
	if req.PriceMsatPerSec == nil {
		s.writeErr(w, badField("price_msat_per_sec", "is required"))
		return
	}
	if err := s.fillPlan(p, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	err = s.db.Update(r.Context(), func(tx store.ReceiverTx) error {
		// Executed again under its Idempotency-Key after a crash: the
		// seeded id finds the plan the first execution made.
		old, err := tx.Plan(p.ID)
		switch {
		case err == nil:
			p = old
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return tx.PutPlan(p)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusCreated, s.planView(p))
}

func (s *apiServer) fillPlan(p *store.Plan, req *planRequest) error {
	if req.Label != nil {
		if err := tlv.ValidateLabel(*req.Label); err != nil {
			return badField("label", err.Error())
		}
		p.Label = *req.Label
	}
	if req.OpenEnrolment != nil {
		p.OpenEnrolment = *req.OpenEnrolment
	}
	return req.termsInput.apply(&p.Terms, &p.DefaultIncrement)
}

// listPlans pages the plans in id order (after= a plan id, limit=).
func (s *apiServer) listPlans(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	after := q.Get("after")
	plans := []planView{}
	err = s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		plans = plans[:0]
		return tx.ForEachPlan(func(p *store.Plan) error {
			if string(p.ID) <= after {
				return nil
			}
			plans = append(plans, s.planView(p))
			if len(plans) == limit {
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	resp := map[string]any{"plans": plans}
	if len(plans) == limit {
		resp["next_after"] = plans[len(plans)-1].ID
	}
	common.WriteJSON(w, http.StatusOK, resp)
}

func (s *apiServer) getPlan(w http.ResponseWriter, r *http.Request) {
	var p *store.Plan
	err := s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		var err error
		p, err = tx.Plan(store.PlanID(r.PathValue("id")))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("plan")
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, s.planView(p))
}

func (s *apiServer) updatePlan(w http.ResponseWriter, r *http.Request) {
	var req planRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	var p *store.Plan
	err := s.db.Update(r.Context(), func(tx store.ReceiverTx) error {
		var err error
		p, err = tx.Plan(store.PlanID(r.PathValue("id")))
		if errors.Is(err, store.ErrNotFound) {
			return notFound("plan")
		}
		if err != nil {
			return err
		}
		if err := s.fillPlan(p, &req); err != nil {
			return err
		}
		p.UpdatedAt = s.now()
		return tx.PutPlan(p)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, s.planView(p))
}

// errSecretReadOnly answers a read-only caller who named a subscription by
// its secret: the read-only token works with public ids only, so it can
// neither confirm a guessed secret nor echo one back.
var errSecretReadOnly = &common.APIError{Code: "forbidden", Field: "id",
	Message: "the read-only token names subscriptions by their public " +
		"id (sub_...), not by the payer's secret"}

// lookupSubID turns an id given to the API into the subscription's secret
// id: the public id ("sub_" + 32 hex) with any token, or, with the admin
// token only, the secret itself (32 hex, as in the offer), so a provider
// can look up what a payer quotes. field names the parameter in errors.
func (s *apiServer) lookupSubID(ctx context.Context, r *http.Request,
	raw, field string) (store.SubID, error) {

	if tlv.IsPublicID(raw) {
		pub, err := tlv.ParsePublicID(raw)
		if err != nil {
			return store.SubID{}, badField(field, "a public "+
				"subscription id is sub_ and 32 hex characters")
		}
		var id store.SubID
		err = s.db.View(ctx, func(tx store.ReceiverTx) error {
			sub, err := tx.SubscriptionByPublicID(pub)
			if err == nil {
				id = sub.ID
			}
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return store.SubID{}, notFound("subscription")
		}
		return id, err
	}
	id, err := tlv.ParseSubscriptionID(raw)
	if err != nil {
		return store.SubID{}, badField(field, "subscription id must "+
			"be its public id (sub_ and 32 hex characters)")
	}
	if s.tokens.Check(r) != common.AccessAdmin {
		return store.SubID{}, &common.APIError{Code: errSecretReadOnly.Code, Field: field, Message: errSecretReadOnly.Message}
	}
	return store.SubID(id), nil
}

// parseSubID reads the {id} path value (see lookupSubID).
func (s *apiServer) parseSubID(r *http.Request) (store.SubID, error) {
	return s.lookupSubID(r.Context(), r, r.PathValue("id"), "id")
}

// subscriptionResponse is what creating a subscription returns: the view,
// and the two things the admin hands to the payer, the offer and the
// secret it holds. No other answer but the offer endpoint's holds them.
type subscriptionResponse struct {
	core.SubscriptionView
	Secret string `json:"secret,omitempty"`
	Offer  string `json:"offer,omitempty"`
}

type createSubRequest struct {
	PlanID string      `json:"plan_id"`
	Terms  *termsInput `json:"terms"`
}

func (s *apiServer) createSubscription(w http.ResponseWriter, r *http.Request) {
	var req createSubRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	if req.PlanID == "" {
		s.writeErr(w, badField("plan_id", "is required"))
		return
	}
	id, err := tlv.NewSubscriptionID()
	if seeded, ok := idem.SeededID(r.Context(), "subscription"); ok {
		id = tlv.SubscriptionID(seeded)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	now := s.now()
	var (
		sub  *store.ReceiverSubscription
		plan *store.Plan
	)
	err = s.db.Update(r.Context(), func(tx store.ReceiverTx) error {
		var err error
		plan, err = tx.Plan(store.PlanID(req.PlanID))
		if errors.Is(err, store.ErrNotFound) {
			return badField("plan_id", "no plan "+req.PlanID)
		}
		if err != nil {
			return err
		}
		// Executed again under its Idempotency-Key after a crash: the
		// seeded id finds the subscription the first execution made.
		old, err := tx.Subscription(store.SubID(id))
		switch {
		case err == nil:
			sub = old
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		sub = core.NewSubscription(store.SubID(id), plan, now)
		if req.Terms != nil {
			if err := req.Terms.apply(&sub.Terms, nil); err != nil {
				return err
			}
		}
		if err := tx.PutSubscription(sub); err != nil {
			return err
		}
		return core.AppendEvent(tx, store.EventSubscriptionCreated, sub,
			nil, "", now)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.notify()
	common.WriteJSON(w, http.StatusCreated, subscriptionResponse{
		SubscriptionView: core.NewSubscriptionView(sub, now),
		Secret:           sub.ID.Hex(),
		Offer:            s.offer(plan, sub.Terms, &id, nil),
	})
}

func (s *apiServer) loadSub(ctx context.Context, id store.SubID) (
	*store.ReceiverSubscription, error) {

	var sub *store.ReceiverSubscription
	err := s.db.View(ctx, func(tx store.ReceiverTx) error {
		var err error
		sub, err = tx.Subscription(id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("subscription")
	}
	return sub, err
}

func (s *apiServer) getSubscription(w http.ResponseWriter, r *http.Request) {
	id, err := s.parseSubID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	sub, err := s.loadSub(r.Context(), id)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, core.NewSubscriptionView(sub, s.now()))
}

// getPaid is the cheap check a provider calls on every request: from the
// paid index in memory when there is one (badger), else one View.
func (s *apiServer) getPaid(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	var (
		pub    tlv.PublicID
		secret *store.SubID
	)
	if tlv.IsPublicID(raw) {
		p, err := tlv.ParsePublicID(raw)
		if err != nil {
			s.writeErr(w, badField("id", "a public subscription id "+
				"is sub_ and 32 hex characters"))
			return
		}
		pub = p
	} else {
		// The secret, with the admin token only (lookupSubID's rules).
		id, err := s.lookupSubID(r.Context(), r, raw, "id")
		if err != nil {
			s.writeErr(w, err)
			return
		}
		pub, secret = id.PublicID(), &id
	}
	var (
		e   paidEntry
		err error
	)
	if s.paidIdx != nil {
		e, err = s.paidIdx.paid(r.Context(), pub)
	} else {
		e, err = viewPaid(r.Context(), s.db, pub)
	}
	if err == nil && secret != nil && e.id != *secret {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("subscription")
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, newPaidView(pub, &e, s.now()))
}

// getOffer returns a subscription's personal offer, with its public id and
// the secret the offer holds, for the admin to hand to the payer. The
// secret authorises payments and cancels, so it needs the admin token.
func (s *apiServer) getOffer(w http.ResponseWriter, r *http.Request) {
	if s.tokens.Check(r) != common.AccessAdmin {
		s.writeErr(w, &common.APIError{Code: "forbidden",
			Message: "the offer contains the subscription's secret; " +
				"use the admin token"})
		return
	}
	id, err := s.parseSubID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var plan *store.Plan
	sub, err := s.loadSub(r.Context(), id)
	if err == nil {
		err = s.db.View(r.Context(), func(tx store.ReceiverTx) error {
			var err error
			plan, err = tx.Plan(sub.PlanID)
			return err
		})
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	tid := tlv.SubscriptionID(id)
	offer := s.offer(plan, sub.Terms, &tid, nil)
	if offer == "" {
		common.WriteError(w, http.StatusServiceUnavailable,
			"lnd_unavailable", "", "lnd's node key is not known yet")
		return
	}
	common.WriteJSON(w, http.StatusOK, map[string]string{"offer": offer,
		"id": id.PublicID().String(), "secret": id.Hex()})
}

func (s *apiServer) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var state store.SubState
	if st := q.Get("state"); st != "" {
		for c := store.SubPending; c <= store.SubCancelledByPayer; c++ {
			if c.String() == st {
				state = c
			}
		}
		if state == 0 {
			s.writeErr(w, badField("state", "unknown state "+st))
			return
		}
	}
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	page := store.Page{Limit: limit}
	if a := q.Get("after"); a != "" {
		sid, err := s.lookupSubID(r.Context(), r, a, "after")
		if err != nil {
			s.writeErr(w, err)
			return
		}
		page.After = &sid
	}
	now := s.now()
	subs := []core.SubscriptionView{}
	err = s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		subs = subs[:0]
		return tx.ForEachSubscription(state, page,
			func(sub *store.ReceiverSubscription) error {
				subs = append(subs, core.NewSubscriptionView(sub, now))
				return nil
			})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	resp := map[string]any{"subscriptions": subs}
	if len(subs) == limit && limit > 0 {
		resp["next_after"] = subs[len(subs)-1].ID
	}
	common.WriteJSON(w, http.StatusOK, resp)
}

func (s *apiServer) cancelSubscription(w http.ResponseWriter, r *http.Request) {
	id, err := s.parseSubID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	now := s.now()
	var sub *store.ReceiverSubscription
	err = s.db.Update(r.Context(), func(tx store.ReceiverTx) error {
		var err error
		sub, err = tx.Subscription(id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("subscription")
		}
		if err != nil || core.Cancelled(sub.State) {
			return err
		}
		sub, err = core.Transition(tx, id, core.TrigProviderCancel, now)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.notify()
	common.WriteJSON(w, http.StatusOK, core.NewSubscriptionView(sub, now))
}

type updateSubRequest struct {
	Terms *termsInput `json:"terms"`
}

// updateSubscription overrides one subscription's terms (a loyal customer's
// longer grace period); the plan is unchanged.
func (s *apiServer) updateSubscription(w http.ResponseWriter, r *http.Request) {
	id, err := s.parseSubID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var req updateSubRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	if req.Terms == nil {
		s.writeErr(w, badField("terms", "is required"))
		return
	}
	now := s.now()
	var sub *store.ReceiverSubscription
	err = s.db.Update(r.Context(), func(tx store.ReceiverTx) error {
		var err error
		sub, err = tx.Subscription(id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("subscription")
		}
		if err != nil {
			return err
		}
		if err := req.Terms.apply(&sub.Terms, nil); err != nil {
			return err
		}
		sub.UpdatedAt = now
		if err := tx.PutSubscription(sub); err != nil {
			return err
		}
		return core.AppendEvent(tx, store.EventSubscriptionUpdated, sub,
			nil, "", now)
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.notify()
	common.WriteJSON(w, http.StatusOK, core.NewSubscriptionView(sub, now))
}

func (s *apiServer) listPayments(w http.ResponseWriter, r *http.Request) {
	id, err := s.parseSubID(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	q := r.URL.Query()
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// after is the cursor every list takes; after_sequence, its old
	// name here, is still read.
	var after uint64
	for _, name := range []string{"after", "after_sequence"} {
		a := q.Get(name)
		if a == "" {
			continue
		}
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			s.writeErr(w, badField(name, "must be a payment's "+
				"sequence number"))
			return
		}
		break
	}
	if _, err := s.loadSub(r.Context(), id); err != nil {
		s.writeErr(w, err)
		return
	}
	pays := []core.PaymentView{}
	err = s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		pays = pays[:0]
		return tx.ForEachPayment(id, after, func(p *store.Payment) error {
			pays = append(pays, core.NewPaymentView(p))
			if len(pays) >= limit {
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	resp := map[string]any{"payments": pays}
	if len(pays) == limit {
		resp["next_after"] = strconv.FormatUint(pays[len(pays)-1].Sequence, 10)
	}
	common.WriteJSON(w, http.StatusOK, resp)
}

func (s *apiServer) getPayment(w http.ResponseWriter, r *http.Request) {
	raw, err := hex.DecodeString(r.PathValue("hash"))
	if err != nil || len(raw) != 32 {
		s.writeErr(w, badField("hash", "payment hash must be 64 hex "+
			"characters"))
		return
	}
	var p *store.Payment
	err = s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		var err error
		p, err = tx.Payment(store.Hash(raw))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		err = notFound("payment")
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, core.NewPaymentView(p))
}

// eventView is an event as webhooks get it, with its delivery state: a
// summary, and the state at each endpoint.
type eventView struct {
	webhook.Envelope
	Delivered   bool                   `json:"delivered"`
	Attempts    uint32                 `json:"attempts"`
	LastError   string                 `json:"last_error,omitempty"`
	NextAttempt *time.Time             `json:"next_attempt,omitempty"`
	Deliveries  []webhook.DeliveryView `json:"deliveries"`
}

func (s *apiServer) newEventView(tx store.ReceiverTx, ev *store.Event) (
	eventView, error) {

	v := eventView{
		Envelope:  webhook.NewEnvelope(ev, s.network),
		Delivered: ev.Delivered,
		Attempts:  ev.Attempts,
		LastError: ev.LastError,
	}
	if !ev.Delivered && ev.Attempts > 0 && !ev.NextAttempt.IsZero() {
		t := ev.NextAttempt.UTC()
		v.NextAttempt = &t
	}
	var err error
	v.Deliveries, err = webhook.Deliveries(tx, s.webhookURLs, ev)
	// A dead letter leaves the pending queue, but it was not delivered.
	for _, dl := range v.Deliveries {
		if dl.State == store.DeliveryDead.String() {
			v.Delivered = false
		}
	}
	return v, err
}

// retryEvent makes an event due now at the endpoints that gave it up (the
// dead letters) or still wait for it, or resends it everywhere if all
// have it. {id} is the event's random id (evt_...).
func (s *apiServer) retryEvent(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	b, err := hex.DecodeString(strings.TrimPrefix(raw, "evt_"))
	if err != nil || len(b) != 16 || !strings.HasPrefix(raw, "evt_") {
		s.writeErr(w, badField("id", "an event id is evt_ and 32 hex "+
			"characters"))
		return
	}
	var view eventView
	_, err = s.retryWebhooks(r.Context(), func(tx store.ReceiverTx) (
		[]*store.Event, error) {

		ev, err := tx.EventByUID(store.EventUID(b))
		if err != nil {
			return nil, err
		}
		return []*store.Event{ev}, nil
	}, func(tx store.ReceiverTx, evs []*store.Event) error {
		var err error
		view, err = s.newEventView(tx, evs[0])
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = notFound("event")
	case errors.Is(err, webhook.ErrNoEndpoints):
		err = &common.APIError{Code: "conflict", Message: err.Error() +
			" (--webhook.url)"}
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, view)
}

// retryWebhooks is the one way a provider retries webhook events, the
// API's retry of one event and the dashboard's button alike: in one
// transaction it runs webhook.RetryEvent on the events pick returns, and
// then, if set, done (to read the result); once committed it rewinds the
// dispatcher to the oldest of them (they may lie below its cursors) and
// wakes it and the pages. It returns how many events it retried.
func (s *apiServer) retryWebhooks(ctx context.Context,
	pick func(tx store.ReceiverTx) ([]*store.Event, error),
	done func(tx store.ReceiverTx, evs []*store.Event) error) (int, error) {

	var (
		oldest store.EventID
		n      int
	)
	err := s.db.Update(ctx, func(tx store.ReceiverTx) error {
		oldest, n = 0, 0
		if len(s.webhookURLs) == 0 {
			return webhook.ErrNoEndpoints
		}
		evs, err := pick(tx)
		if err != nil {
			return err
		}
		now := s.now()
		for _, ev := range evs {
			err := webhook.RetryEvent(tx, s.webhookURLs, ev, now)
			if err != nil {
				return err
			}
			if oldest == 0 || ev.ID < oldest {
				oldest = ev.ID
			}
		}
		n = len(evs)
		if done != nil {
			return done(tx, evs)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if oldest != 0 && s.webhookRetried != nil {
		s.webhookRetried(oldest)
	}
	s.notify()
	return n, nil
}

// maxRetryBatch bounds the dead letters one retry of them all makes due
// (one store transaction); the next call takes the next ones.
const maxRetryBatch = 500

// retryDeadLetters retries the oldest maxRetryBatch dead letters as the
// API's retry does each, for the dashboard's button.
func (s *apiServer) retryDeadLetters(ctx context.Context) (int, error) {
	return s.retryWebhooks(ctx, func(tx store.ReceiverTx) ([]*store.Event,
		error) {

		ids, err := webhook.DeadLetters(tx,
			webhook.Endpoints(s.webhookURLs), 0, maxRetryBatch)
		if err != nil {
			return nil, err
		}
		evs := make([]*store.Event, 0, len(ids))
		for _, id := range ids {
			ev, err := tx.Event(id)
			if err != nil {
				return nil, err
			}
			evs = append(evs, ev)
		}
		return evs, nil
	}, nil)
}

// listDeadLetters lists the events given up at one configured endpoint at
// least (the dead letters), oldest first, after a sequence number (after=):
// they left the pending queue, and a manual retry is what brings them back.
func (s *apiServer) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var after uint64
	if a := q.Get("after"); a != "" {
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			s.writeErr(w, badField("after", "must be an event's "+
				"sequence number"))
			return
		}
	}
	evs := []eventView{}
	err = s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		evs = evs[:0]
		ids, err := webhook.DeadLetters(tx,
			webhook.Endpoints(s.webhookURLs), store.EventID(after),
			limit)
		if err != nil {
			return err
		}
		for _, id := range ids {
			ev, err := tx.Event(id)
			if err != nil {
				return err
			}
			v, err := s.newEventView(tx, ev)
			if err != nil {
				return err
			}
			evs = append(evs, v)
		}
		return nil
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeEventPage(w, evs, limit)
}

// listEvents lists events after a sequence number (after=); pending=true
// lists only those not yet delivered (the failures a provider should look
// at). With wait_sec, an empty page is answered only once no event came
// within that many seconds (a long poll, see waitEvents).
func (s *apiServer) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := common.ParseLimit(q.Get("limit"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var after uint64
	if a := q.Get("after"); a != "" {
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			s.writeErr(w, badField("after", "must be an event's "+
				"sequence number"))
			return
		}
	}
	pendingOnly := false
	if p := q.Get("pending"); p != "" {
		if pendingOnly, err = strconv.ParseBool(p); err != nil {
			s.writeErr(w, badField("pending", "must be true or false"))
			return
		}
	}
	wait, err := parseWaitSec(q.Get("wait_sec"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	read := func() ([]eventView, error) {
		return s.readEvents(r.Context(), after, limit, pendingOnly)
	}
	var evs []eventView
	if wait > 0 {
		var moved func() bool
		if !pendingOnly {
			// The whole list after after is empty until the
			// ledger's last event id passes after.
			moved = func() bool {
				last, err := s.eventWatch.lastID(r.Context(),
					s.db, s.rereadInterval()/2)
				// On an error the page's read reports it.
				return err != nil || uint64(last) > after
			}
		}
		evs, err = s.waitEvents(r.Context(), wait, read, moved)
	} else {
		evs, err = read()
	}
	if r.Context().Err() != nil {
		// The client went away: nobody to answer.
		return
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeEventPage(w, evs, limit)
}

// readEvents reads a page of GET /v1/events.
func (s *apiServer) readEvents(ctx context.Context, after uint64, limit int,
	pendingOnly bool) ([]eventView, error) {

	evs := []eventView{}
	err := s.db.View(ctx, func(tx store.ReceiverTx) error {
		evs = evs[:0]
		if pendingOnly {
			return tx.ForEachPendingEvent(store.EventID(after),
				func(ev *store.Event) error {
					v, err := s.newEventView(tx, ev)
					if err != nil {
						return err
					}
					evs = append(evs, v)
					if len(evs) >= limit {
						return store.ErrStop
					}
					return nil
				})
		}
		// A range read, not ids counted up from after: ids have
		// gaps on PostgreSQL (a rolled-back step burns its ids).
		return tx.ForEachEvent(store.EventID(after), limit,
			func(ev *store.Event) error {
				v, err := s.newEventView(tx, ev)
				if err != nil {
					return err
				}
				evs = append(evs, v)
				return nil
			})
	})
	return evs, err
}

// writeEventPage answers a page of events, with next_after when the page
// is full (there may be more).
func writeEventPage(w http.ResponseWriter, evs []eventView, limit int) {
	resp := map[string]any{"events": evs}
	if len(evs) == limit {
		resp["next_after"] = strconv.FormatUint(evs[len(evs)-1].Sequence, 10)
	}
	common.WriteJSON(w, http.StatusOK, resp)
}

// getOpenAPI serves docs/openapi-receiver.json, embedded.
func (s *apiServer) getOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(docs.OpenAPIReceiver)
}

func (s *apiServer) getHealth(w http.ResponseWriter, r *http.Request) {
	common.WriteJSON(w, http.StatusOK, s.health())
}

// listRefusals returns the persisted count of refused payments by reason.
// Refusals that name no known subscription leave no payment entry, and
// those of a known subscription are kept in bounded number, so these
// counters are the whole tally (they survive restarts, unlike the metric).
func (s *apiServer) listRefusals(w http.ResponseWriter, r *http.Request) {
	counts := map[string]uint64{}
	for _, reason := range core.Reasons {
		counts[string(reason)] = 0
	}
	var total uint64
	err := s.db.View(r.Context(), func(tx store.ReceiverTx) error {
		total = 0
		return tx.ForEachRefusalCount(func(reason string, n uint64) error {
			counts[reason] = n
			total += n
			return nil
		})
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	common.WriteJSON(w, http.StatusOK, map[string]any{
		"refusals": counts, "total": total,
	})
}
