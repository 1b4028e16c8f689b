package sender

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/common/idem"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// ErrExists is returned when a personal offer is added twice.
var ErrExists = errors.New("subscription already exists")

// State names shown by the API. "waiting" is not stored: it is an active
// subscription whose payments are failing and backing off.
const (
	StateActive     = "active"
	StatePaused     = "paused"
	StateWaiting    = "waiting"
	StateRefused    = "refused"
	StateCapReached = "cap_reached"
	StateCancelled  = "cancelled"
)

// Op is a payer's action on a subscription.
type Op string

// The payer's actions.
const (
	OpPause  Op = "pause"
	OpResume Op = "resume"
	OpCancel Op = "cancel"
)

// transitions is the state table of the payer's actions: from each stored
// state, what an action leads to. Moves made by the engine itself (active
// -> cap_reached, active -> refused, cap_reached -> active at a new day,
// refused -> active to probe the receiver after a long wait) happen in
// createAttempt, finishRefused and step.
var transitions = map[Op]map[store.SenderState]store.SenderState{
	OpPause: {
		store.SenderActive:     store.SenderPaused,
		store.SenderCapReached: store.SenderPaused,
		store.SenderRefused:    store.SenderPaused,
		store.SenderPaused:     store.SenderPaused,
	},
	OpResume: {
		store.SenderPaused:     store.SenderActive,
		store.SenderCapReached: store.SenderActive,
		store.SenderRefused:    store.SenderActive,
		store.SenderActive:     store.SenderActive,
	},
	OpCancel: {
		store.SenderActive:     store.SenderCancelled,
		store.SenderPaused:     store.SenderCancelled,
		store.SenderCapReached: store.SenderCancelled,
		store.SenderRefused:    store.SenderCancelled,
	},
}

// Add subscribes to an offer with the payer's terms. For an open-enrolment
// offer it makes up a random subscription id; the first payment enrols it.
func (e *Engine) Add(ctx context.Context, offer string, req TermsRequest,
	paused bool) (*View, error) {

	o, err := tlv.ParseOffer(offer)
	if err != nil {
		return nil, fmt.Errorf("offer: %w", err)
	}
	// The same request executed again under its Idempotency-Key (after a
	// crash between the create and the key's answer) finds what the first
	// run made before anything else is checked: a route check that fails
	// now must not report "refused" for a subscription that pays. An
	// open-enrolment offer's id comes from the key's seed; a personal
	// offer carries its id, looked up only when the key's first run
	// committed (else "exists" is a true conflict).
	if o.SubscriptionID == nil {
		if seeded, ok := idem.SeededID(ctx, "subscription"); ok {
			if v, err := e.Get(store.SubID(seeded)); err == nil {
				return v, nil
			}
		}
	} else if idem.Applied(ctx) {
		if v, err := e.Get(store.SubID(*o.SubscriptionID)); err == nil {
			return v, nil
		}
	}
	t, err := ResolveTerms(o, req, nil)
	if err != nil {
		return nil, err
	}
	if err := e.checkRoutable(ctx, o, t); err != nil {
		return nil, err
	}

	var id store.SubID
	var planHex store.PlanID
	switch {
	case o.SubscriptionID != nil:
		id = store.SubID(*o.SubscriptionID)
	default:
		sid, err := tlv.NewSubscriptionID()
		if err != nil {
			return nil, err
		}
		id = store.SubID(sid)
		// Under an Idempotency-Key the id comes from the key's seed,
		// so the same request executed again after a crash finds the
		// subscription it made instead of paying for a second one.
		if seeded, ok := idem.SeededID(ctx, "subscription"); ok {
			id = store.SubID(seeded)
			if v, err := e.Get(id); err == nil {
				return v, nil
			}
		}
		planHex = store.PlanID(o.PlanID.String())
	}

	now := e.clock.Now()
	state := store.SenderActive
	reason := ""
	if paused {
		state = store.SenderPaused
		reason = "added paused"
	}
	s := &store.SenderSubscription{
		ID: id,
		Offer: store.Offer{
			Destination: o.Node,
			PlanID:      planHex,
			Label:       o.Label,
			Terms: store.Terms{
				RatePerSecond: o.PriceMsatPerSec,
				MinPayment:    o.MinPayment,
				Grace:         o.GracePeriod,
				MaxPrepay:     o.MaxPrepay,
			},
		},
		State:       state,
		Reason:      reason,
		NextSeq:     1,
		CreatedAt:   now,
		UpdatedAt:   now,
		OfferString: o.String(),
		Revision:    1,
	}
	applyTerms(s, t)

	err = e.db.Update(ctx, func(tx store.SenderTx) error {
		_, err := tx.Subscription(id)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %s", ErrExists, id)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return tx.PutSubscription(s)
	})
	if err != nil {
		return nil, err
	}

	r, err := e.newSubRun(s)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.addSubLocked(id, r)
	e.scheduleLocked(r, now)
	v := e.viewLocked(r)
	e.mu.Unlock()
	e.wake()
	e.log.Infof("Subscription %s added (%s): %v per %v, buffer %v, "+
		"caps %d/day %d total msat", id, state,
		PaymentAmount(o.PriceMsatPerSec, t.Increment), t.Increment,
		t.Buffer, t.MaxPerDay, t.MaxTotal)
	return v, nil
}

// applyTerms writes resolved terms into a stored subscription.
func applyTerms(s *store.SenderSubscription, t *Terms) {
	s.Increment = t.Increment
	s.Buffer = t.Buffer
	s.MaxPrice = t.MaxPrice
	s.FeeLimitPPM = t.FeeLimitPPM
	s.Limits.MaxFee = t.FeeLimit
	s.Limits.MaxPerDay = t.MaxPerDay
	s.Limits.MaxTotal = t.MaxTotal
	s.Limits.MaxPayment = PaymentAmount(s.Offer.Terms.RatePerSecond,
		t.Increment)
}

// termsOf reads the payer's terms back from a stored subscription.
func termsOf(s *store.SenderSubscription) *Terms {
	return &Terms{
		Increment:   s.Increment,
		Buffer:      s.Buffer,
		MaxPerDay:   s.Limits.MaxPerDay,
		MaxTotal:    s.Limits.MaxTotal,
		MaxPrice:    s.MaxPrice,
		FeeLimitPPM: s.FeeLimitPPM,
		FeeLimit:    s.Limits.MaxFee,
	}
}

// lookup finds a subscription's live view.
func (e *Engine) lookup(id store.SubID) (*subRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.subs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, nil
}

// Apply performs a payer's action following the state table. notify asks
// a cancel to tell the receiver (a cancel message), as the protocol allows.
func (e *Engine) Apply(ctx context.Context, id store.SubID, op Op,
	notify bool) (*View, error) {

	r, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	table, ok := transitions[op]
	if !ok {
		return nil, fmt.Errorf("%w: unknown action %q", ErrBadState, op)
	}

	resumed := false
	err = e.updateSub(ctx, id, func(_ store.SenderTx,
		s *store.SenderSubscription) error {

		resumed = false
		to, ok := table[s.State]
		if !ok {
			return fmt.Errorf("%w: can't %s a %s subscription",
				ErrBadState, op, s.State)
		}
		s.State = to
		s.ResumeAt = time.Time{}
		switch op {
		case OpPause:
			s.Reason = "paused by payer"
		case OpResume:
			s.Reason = ""
			s.Refusals = 0
			resumed = true
		case OpCancel:
			s.Reason = "cancelled by payer"
			s.CancelPending = notify
			s.CancelledAt = e.clock.Now()
			if notify {
				s.Reason += "; telling the receiver"
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if op != OpResume {
		if err := e.abandonWaiting(ctx, r, string(op)+"d by payer"); err != nil {
			return nil, err
		}
	}

	e.mu.Lock()
	if op == OpResume {
		e.clearWaitingLocked(r)
	}
	if resumed {
		r.refusedProbes = 0
	}
	e.scheduleLocked(r, e.clock.Now())
	v := e.viewLocked(r)
	e.mu.Unlock()
	e.wake()
	return v, nil
}

// ChangeTerms changes a subscription's terms. A subscription stopped at a
// cap becomes active again; the scheduler stops it again if a cap still
// blocks.
func (e *Engine) ChangeTerms(ctx context.Context, id store.SubID,
	req TermsRequest) (*View, error) {

	r, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	err = e.updateSub(ctx, id, func(_ store.SenderTx,
		s *store.SenderSubscription) error {

		if s.State == store.SenderCancelled {
			return fmt.Errorf("%w: can't change the terms of a "+
				"cancelled subscription", ErrBadState)
		}
		t, err := ResolveTerms(r.offer, req, termsOf(s))
		if err != nil {
			return err
		}
		applyTerms(s, t)
		if s.State == store.SenderCapReached {
			s.State = store.SenderActive
			s.Reason = ""
			s.ResumeAt = time.Time{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.scheduleLocked(r, e.clock.Now())
	v := e.viewLocked(r)
	e.mu.Unlock()
	e.wake()
	return v, nil
}

// View is a subscription as the API shows it.
type View struct {
	// ID is the subscription's public id ("sub_..."), the same the
	// receiver shows for it, so payer and provider can name it to each
	// other without revealing the secret.
	ID string `json:"id"`
	// Secret is the subscription id the payments carry (hex), which
	// authorises payments and cancels; the API shows it, and Offer,
	// to the admin token only.
	Secret      string `json:"secret,omitempty"`
	State       string `json:"state"`
	StoredState string `json:"stored_state"`
	Reason      string `json:"reason,omitempty"`
	Waiting     string `json:"waiting,omitempty"`
	// RetryAt is the next retry of a waiting subscription, or the next
	// probe of the receiver by a refused one.
	RetryAt string `json:"retry_at,omitempty"`

	Node string `json:"node"`
	// Nodes are the offer's nodes in failover order (Node first).
	Nodes []string `json:"nodes"`
	// PayingNode is the node new payments go to: Node, or the node the
	// sender failed over to while Node is unreachable.
	PayingNode  string `json:"paying_node"`
	PlanID      string `json:"plan_id,omitempty"`
	Label       string `json:"label,omitempty"`
	Offer       string `json:"offer"`
	PriceMsatPS uint64 `json:"price_msat_per_sec"`

	Terms TermsView `json:"terms"`

	PaymentMsat uint64 `json:"payment_msat"`
	PaidUntil   string `json:"paid_until,omitempty"`
	// ServiceUntil is set once the receiver acknowledged the payer's
	// cancel: the provider serves the time already paid for, so service
	// ends at the end of paid time (no grace), or at the cancel if paid
	// time had already ended then: the receiver's ends_at.
	ServiceUntil   string `json:"service_until,omitempty"`
	NextSeq        uint64 `json:"next_sequence"`
	Payments       uint64 `json:"payments"`
	SentMsat       uint64 `json:"sent_msat"`
	FeesMsat       uint64 `json:"fees_msat"`
	ReservedMsat   uint64 `json:"reserved_msat"`
	InFlight       int    `json:"in_flight"`
	CancelPending  bool   `json:"cancel_pending,omitempty"`
	CapResumesAt   string `json:"cap_resumes_at,omitempty"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	RefusalsInARow uint32 `json:"refusals_in_a_row,omitempty"`
}

// TermsView is the payer's terms as the API shows them.
type TermsView struct {
	Increment    uint64 `json:"increment_sec"`
	Buffer       uint64 `json:"buffer_sec"`
	MaxPerDay    uint64 `json:"max_per_day_msat"`
	MaxTotal     uint64 `json:"max_total_msat"`
	MaxPrice     uint64 `json:"max_price_msat_per_sec"`
	FeeLimitPPM  uint32 `json:"fee_limit_ppm"`
	FeeLimitMsat uint64 `json:"fee_limit_msat"`
}

// serviceUntil is when service ends for a subscription whose cancel the
// receiver acknowledged ("" otherwise), by the receiver's rule for ends_at:
// max(paid_until, cancel time), without grace. The receiver's cancel time
// is when the cancel message arrived, a delivery later than the payer's
// cancel the sender records.
func serviceUntil(s *store.SenderSubscription) string {
	if s.State != store.SenderCancelled || s.CancelPending {
		return ""
	}
	if s.CancelledAt.After(s.PaidUntil) {
		return fmtTime(s.CancelledAt)
	}
	return fmtTime(s.PaidUntil)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// viewLocked builds the API view; e.mu is held.
func (e *Engine) viewLocked(r *subRun) *View {
	s := r.sub
	v := &View{
		ID:             s.ID.PublicID().String(),
		Secret:         s.ID.Hex(),
		State:          s.State.String(),
		StoredState:    s.State.String(),
		Reason:         s.Reason,
		Node:           fmt.Sprintf("%x", s.Offer.Destination[:]),
		Nodes:          nodeStrings(r.dest.nodes),
		PayingNode:     r.dest.paying().String(),
		PlanID:         string(s.Offer.PlanID),
		Label:          s.Offer.Label,
		Offer:          s.OfferString,
		PriceMsatPS:    uint64(s.Offer.Terms.RatePerSecond),
		PaymentMsat:    uint64(PaymentAmount(s.Offer.Terms.RatePerSecond, s.Increment)),
		PaidUntil:      fmtTime(s.PaidUntil),
		NextSeq:        s.NextSeq,
		Payments:       s.Payments,
		SentMsat:       uint64(s.TotalSent),
		FeesMsat:       uint64(s.TotalFees),
		ReservedMsat:   uint64(s.Reserved),
		InFlight:       len(r.open),
		CancelPending:  s.CancelPending,
		CreatedAt:      fmtTime(s.CreatedAt),
		UpdatedAt:      fmtTime(s.UpdatedAt),
		RefusalsInARow: s.Refusals,
		ServiceUntil:   serviceUntil(s),
		Terms: TermsView{
			Increment:    uint64(s.Increment / time.Second),
			Buffer:       uint64(s.Buffer / time.Second),
			MaxPerDay:    uint64(s.Limits.MaxPerDay),
			MaxTotal:     uint64(s.Limits.MaxTotal),
			MaxPrice:     uint64(s.MaxPrice),
			FeeLimitPPM:  s.FeeLimitPPM,
			FeeLimitMsat: uint64(s.Limits.MaxFee),
		},
	}
	switch s.State {
	case store.SenderCapReached:
		v.CapResumesAt = fmtTime(s.ResumeAt)
	case store.SenderRefused:
		// The next probe of the receiver.
		v.RetryAt = fmtTime(s.ResumeAt)
	}
	if !r.waitingSince.IsZero() && (s.State == store.SenderActive ||
		(s.State == store.SenderCancelled && s.CancelPending)) {

		if s.State == store.SenderActive {
			v.State = StateWaiting
		}
		v.Waiting = fmt.Sprintf("%s since %s", r.waitingReason,
			fmtTime(r.waitingSince))
		v.RetryAt = fmtTime(r.notBefore)
	}
	return v
}

// addSubLocked adds the subscription id, run by r, to the engine, and to
// the public id index ByPublicID reads (so that a lookup does not hash
// every subscription while holding e.mu, which the payment loop needs).
// Subscriptions are never removed. The caller holds e.mu.
func (e *Engine) addSubLocked(id store.SubID, r *subRun) {
	if e.byPublic == nil {
		e.byPublic = map[tlv.PublicID]store.SubID{}
	}
	e.subs[id] = r
	e.byPublic[id.PublicID()] = id
}

// ByPublicID finds the subscription whose public id is p.
func (e *Engine) ByPublicID(p tlv.PublicID) (store.SubID, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id, ok := e.byPublic[p]; ok {
		return id, nil
	}
	return store.SubID{}, fmt.Errorf("%w: %s", ErrNotFound, p)
}

// Get returns one subscription's view.
func (e *Engine) Get(id store.SubID) (*View, error) {
	r, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.viewLocked(r), nil
}

// List returns the subscriptions in a shown state ("" for all), by id.
func (e *Engine) List(state string) []*View {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []*View{}
	for _, r := range e.subs {
		v := e.viewLocked(r)
		if state == "" || v.State == state {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// StateCounts counts subscriptions by shown state, for metrics and health.
func (e *Engine) StateCounts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{StateActive: 0, StatePaused: 0, StateWaiting: 0,
		StateRefused: 0, StateCapReached: 0, StateCancelled: 0}
	for _, r := range e.subs {
		out[e.viewLocked(r).State]++
	}
	return out
}

// PaymentView is one payment attempt as the API shows it.
type PaymentView struct {
	Sequence uint64 `json:"sequence"`
	Hash     string `json:"payment_hash"`
	State    string `json:"state"`
	Cancel   bool   `json:"cancel,omitempty"`
	Amount   uint64 `json:"amount_msat"`
	Fee      uint64 `json:"fee_msat"`
	MaxFee   uint64 `json:"max_fee_msat"`
	Tries    uint32 `json:"tries"`
	// Node is the provider node the payment is (last) sent to.
	Node      string `json:"node"`
	Failure   string `json:"failure,omitempty"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// DaySpend is what a subscription spent on one UTC day.
type DaySpend struct {
	Day      string `json:"day"`
	Payments uint64 `json:"payments"`
	Amount   uint64 `json:"amount_msat"`
	Fees     uint64 `json:"fees_msat"`
	Total    uint64 `json:"total_msat"`
	// Committed is spent plus reserved for open payments, the figure the
	// daily cap is checked against.
	Committed uint64 `json:"committed_msat"`
}

// PaymentsView is a page of a subscription's payments with its totals.
type PaymentsView struct {
	Payments []PaymentView `json:"payments"`
	// NextAfter is the cursor of the next page (the last sequence
	// listed, as a string like every list's cursor); "" on the last.
	NextAfter   string     `json:"next_after,omitempty"`
	Succeeded   uint64     `json:"succeeded"`
	SentMsat    uint64     `json:"sent_msat"`
	FeesMsat    uint64     `json:"fees_msat"`
	TotalMsat   uint64     `json:"total_msat"`
	SpendPerDay []DaySpend `json:"spend_per_day"`
}

// Payments lists a subscription's attempts after a sequence, with totals
// and spend per day over all of them.
func (e *Engine) Payments(ctx context.Context, id store.SubID, after uint64,
	limit int) (*PaymentsView, error) {

	r, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	out := &PaymentsView{Payments: []PaymentView{}}
	days := map[store.Day]*DaySpend{}
	err = e.db.View(ctx, func(tx store.SenderTx) error {
		out.Payments = out.Payments[:0]
		days = map[store.Day]*DaySpend{}
		*out = PaymentsView{Payments: out.Payments}
		err := tx.ForEachAttempt(id, 0, func(a *store.Attempt) error {
			if a.Seq > after && len(out.Payments) < limit {
				pv := paymentView(a)
				pv.Node = attemptDestination(r, a).String()
				out.Payments = append(out.Payments, pv)
				out.NextAfter = strconv.FormatUint(a.Seq, 10)
			}
			d := days[a.Day]
			if d == nil {
				d = &DaySpend{Day: a.Day.Start().Format(
					"2006-01-02")}
				days[a.Day] = d
			}
			if a.State == store.AttemptSucceeded {
				out.Succeeded++
				out.SentMsat += uint64(a.Amount)
				out.FeesMsat += uint64(a.Fee)
				d.Payments++
				d.Amount += uint64(a.Amount)
				d.Fees += uint64(a.Fee)
				d.Total += uint64(a.Amount + a.Fee)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for day, d := range days {
			c, err := tx.SpendOn(id, day)
			if err != nil {
				return err
			}
			d.Committed = uint64(c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out.Payments) < limit {
		out.NextAfter = ""
	}
	out.TotalMsat = out.SentMsat + out.FeesMsat
	out.SpendPerDay = []DaySpend{}
	for _, d := range days {
		out.SpendPerDay = append(out.SpendPerDay, *d)
	}
	sort.Slice(out.SpendPerDay, func(i, j int) bool {
		return out.SpendPerDay[i].Day < out.SpendPerDay[j].Day
	})
	return out, nil
}

func paymentView(a *store.Attempt) PaymentView {
	state := a.State.String()
	if a.State == store.AttemptCreated && a.Tries > 0 {
		state = "retrying"
	}
	return PaymentView{
		Sequence:  a.Seq,
		Hash:      a.Hash.String(),
		State:     state,
		Cancel:    a.Cancel,
		Amount:    uint64(a.Amount),
		Fee:       uint64(a.Fee),
		MaxFee:    uint64(a.MaxFee),
		Tries:     a.Tries,
		Failure:   a.FailureReason,
		CreatedAt: fmtTime(a.CreatedAt),
		UpdatedAt: fmtTime(a.UpdatedAt),
	}
}

// msat is a helper for optional amounts in requests.
func msat(v uint64) *lnwire.MilliSatoshi {
	m := lnwire.MilliSatoshi(v)
	return &m
}

// checkRoutable refuses terms whose fee limit is below the fee of the
// cheapest route to every node of the offer (lnd would answer NO_ROUTE to
// every payment, and failing over would not help). A node lnd can't reach
// at all is no reason to refuse: it may be offline for a while, and the
// waiting state will say so.
func (e *Engine) checkRoutable(ctx context.Context, o *tlv.Offer,
	t *Terms) error {

	e.mu.Lock()
	router := e.router
	e.mu.Unlock()
	p, ok := router.(RouteProber)
	if !ok {
		return nil
	}
	amt := PaymentAmount(o.PriceMsatPerSec, t.Increment)
	maxFee := MaxFee(amt, t.FeeLimitPPM, t.FeeLimit)
	var tooDear error
	for _, node := range o.Nodes() {
		err := probeRoute(ctx, p, node, amt, maxFee)
		switch {
		case errors.Is(err, ErrUnreachable):
			e.log.Warnf("Subscribing to %s: %v; accepted, payments "+
				"wait for a route", node, err)
			return nil
		case errors.Is(err, ErrFeeLimitBelowRoute):
			if tooDear == nil {
				tooDear = fmt.Errorf("%w: %w", ErrBadTerms, err)
			}
		case err != nil:
			e.log.Warnf("Subscribing to %s: asking lnd for a "+
				"route: %v", node, err)
			return nil
		default:
			return nil
		}
	}
	return tooDear
}
