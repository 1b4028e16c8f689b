package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// scanChunk is how many rows a ForEach reads per query. Rows are read
// into memory before fn runs, so fn may run other queries of the same
// transaction (one connection cannot interleave two result sets), and a
// fn that stops early (store.ErrStop) has not made us read the whole
// table.
const scanChunk = 256

// maxReasonLen bounds refusal reasons, as the badger store does.
const maxReasonLen = 64

// tx is one receiver transaction on one connection.
type tx struct {
	ctx  context.Context
	tx   pgx.Tx
	node [33]byte

	// stats are the store's counters.
	stats *stats

	// eventOrder is set once this transaction holds eventOrderLock.
	eventOrder bool

	// wrote is set once a statement of this transaction changed a row:
	// a write made under a request's Idempotency-Key then marks the key
	// applied in the same commit (markIdem).
	wrote bool

	// dbErr is the first error the database returned in this
	// transaction: after it, the transaction is aborted whatever fn does
	// with the error, and whether the step may be retried depends on it.
	dbErr error
}

var _ store.ReceiverTx = (*tx)(nil)

// note records the first database error and translates it.
func (t *tx) note(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) {

		return err
	}
	if t.dbErr == nil {
		t.dbErr = translate(err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23514", "23502", "22003", "22P02", "23503":
			// check, not-null, out of range, invalid text, foreign
			// key: a record the schema refuses.
			return fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
	}
	return translate(err)
}

func (t *tx) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.tx.Exec(t.ctx, sql, args...)
	if err == nil && tag.RowsAffected() > 0 &&
		(tag.Insert() || tag.Update() || tag.Delete()) {

		t.wrote = true
	}
	return tag, t.note(err)
}

// queryRow scans one row; pgx.ErrNoRows becomes store.ErrNotFound.
func (t *tx) queryRow(sql string, args []any, dst ...any) error {
	err := t.tx.QueryRow(t.ctx, sql, args...).Scan(dst...)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return t.note(err)
}

// collect runs a query and scans every row with scan, closing the rows
// before returning.
func collect[T any](t *tx, scan func(pgx.Rows) (T, error), sql string,
	args ...any) ([]T, error) {

	rows, err := t.tx.Query(t.ctx, sql, args...)
	if err != nil {
		return nil, t.note(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, t.note(err)
		}
		out = append(out, v)
	}
	return out, t.note(rows.Err())
}

// stop ends a ForEach: store.ErrStop means "stop, no error".
func stop(err error) error {
	if errors.Is(err, store.ErrStop) {
		return nil
	}
	return err
}

// ns stores a time the way the badger codec does: Unix nanoseconds, 0 for
// the zero time.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNS reads a time stored by ns.
func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nullSub stores the zero subscription id (a payment that named none) as
// NULL.
func nullSub(id store.SubID) []byte {
	if id.IsZero() {
		return nil
	}
	return id[:]
}

// copyFixed copies a bytea column into a fixed-size id, refusing a stored
// value of another length.
func copyFixed(dst []byte, src []byte, what string) error {
	if src == nil {
		return nil
	}
	if len(src) != len(dst) {
		return fmt.Errorf("%w: %s of %d bytes", store.ErrCorrupt, what,
			len(src))
	}
	copy(dst, src)
	return nil
}

// ---- plans ----

const planCols = `id, label, rate_msat, min_payment_msat, increment_msat,
	grace_ns, max_prepay_ns, open_enrolment, created_ns, updated_ns,
	default_increment_ns`

func scanPlan(r pgx.Row) (*store.Plan, error) {
	var (
		p                     store.Plan
		id                    string
		rate, minPay, inc     int64
		grace, prepay, defInc int64
		created, updated      int64
	)
	err := r.Scan(&id, &p.Label, &rate, &minPay, &inc, &grace, &prepay,
		&p.OpenEnrolment, &created, &updated, &defInc)
	if err != nil {
		return nil, err
	}
	p.ID = store.PlanID(id)
	p.Terms = store.Terms{
		RatePerSecond: lnwire.MilliSatoshi(rate),
		MinPayment:    lnwire.MilliSatoshi(minPay),
		Increment:     lnwire.MilliSatoshi(inc),
		Grace:         time.Duration(grace),
		MaxPrepay:     time.Duration(prepay),
	}
	p.CreatedAt, p.UpdatedAt = fromNS(created), fromNS(updated)
	p.DefaultIncrement = time.Duration(defInc)
	return &p, nil
}

func (t *tx) Plan(id store.PlanID) (*store.Plan, error) {
	rows, err := collect(t, func(r pgx.Rows) (*store.Plan, error) {
		return scanPlan(r)
	}, "SELECT "+planCols+" FROM plans WHERE id = $1", string(id))
	if err != nil {
		return nil, fmt.Errorf("plan %q: %w", id, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("plan %q: %w", id, store.ErrNotFound)
	}
	return rows[0], nil
}

// bigintField is a uint64 value bound for a bigint column.
type bigintField struct {
	name string
	v    uint64
}

// fitBigint refuses values a bigint column can't hold as the caller's
// error (store.ErrInvalid naming the column): pgx fails to encode them
// before the server sees them, which would otherwise read as the database
// being unreachable.
func fitBigint(what string, fields []bigintField) error {
	for _, f := range fields {
		if f.v > math.MaxInt64 {
			return fmt.Errorf("%w: %s: %s %d exceeds %d",
				store.ErrInvalid, what, f.name, f.v,
				int64(math.MaxInt64))
		}
	}
	return nil
}

func (t *tx) PutPlan(p *store.Plan) error {
	if p.ID == "" || len(p.ID) > 64 {
		return fmt.Errorf("%w: plan id %q must be 1..64 bytes",
			store.ErrInvalid, p.ID)
	}
	if err := fitBigint("plan "+string(p.ID), []bigintField{
		{"rate_msat", uint64(p.Terms.RatePerSecond)},
		{"min_payment_msat", uint64(p.Terms.MinPayment)},
		{"increment_msat", uint64(p.Terms.Increment)},
	}); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO plans (`+planCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (id) DO UPDATE SET label = $2, rate_msat = $3,
			min_payment_msat = $4, increment_msat = $5, grace_ns = $6,
			max_prepay_ns = $7, open_enrolment = $8, created_ns = $9,
			updated_ns = $10, default_increment_ns = $11`,
		string(p.ID), p.Label, uint64(p.Terms.RatePerSecond),
		uint64(p.Terms.MinPayment), uint64(p.Terms.Increment),
		int64(p.Terms.Grace), int64(p.Terms.MaxPrepay), p.OpenEnrolment,
		ns(p.CreatedAt), ns(p.UpdatedAt), int64(p.DefaultIncrement))
	if err != nil {
		return fmt.Errorf("plan %q: %w", p.ID, err)
	}
	return nil
}

func (t *tx) ForEachPlan(fn func(*store.Plan) error) error {
	after := ""
	for {
		plans, err := collect(t, func(r pgx.Rows) (*store.Plan, error) {
			return scanPlan(r)
		}, "SELECT "+planCols+" FROM plans WHERE id COLLATE \"C\" > $1 "+
			"ORDER BY id COLLATE \"C\" LIMIT $2", after, scanChunk)
		if err != nil {
			return err
		}
		for _, p := range plans {
			if err := fn(p); err != nil {
				return stop(err)
			}
		}
		if len(plans) < scanChunk {
			return nil
		}
		after = string(plans[len(plans)-1].ID)
	}
}

// ---- subscriptions ----

const subCols = `id, plan_id, rate_msat, min_payment_msat, increment_msat,
	grace_ns, max_prepay_ns, state, paid_until_ns, remainder_msat,
	last_seq, total_paid_msat, total_seconds, payments, created_ns,
	updated_ns, cancelled_ns, credit_count`

func scanSub(r pgx.Row) (*store.ReceiverSubscription, error) {
	var (
		s                                    store.ReceiverSubscription
		id                                   []byte
		plan                                 string
		rate, minPay, inc, grace, prepay     int64
		state                                int16
		paid, rem, total, secs, pays         int64
		created, updated, cancelled, credits int64
	)
	err := r.Scan(&id, &plan, &rate, &minPay, &inc, &grace, &prepay,
		&state, &paid, &rem, &s.LastSeq, &total, &secs, &pays, &created,
		&updated, &cancelled, &credits)
	if err != nil {
		return nil, err
	}
	if err := copyFixed(s.ID[:], id, "subscription id"); err != nil {
		return nil, err
	}
	s.PlanID = store.PlanID(plan)
	s.Terms = store.Terms{
		RatePerSecond: lnwire.MilliSatoshi(rate),
		MinPayment:    lnwire.MilliSatoshi(minPay),
		Increment:     lnwire.MilliSatoshi(inc),
		Grace:         time.Duration(grace),
		MaxPrepay:     time.Duration(prepay),
	}
	s.State = store.SubState(state)
	s.PaidUntil = fromNS(paid)
	s.Remainder = lnwire.MilliSatoshi(rem)
	s.TotalPaid = lnwire.MilliSatoshi(total)
	s.TotalSeconds = uint64(secs)
	s.Payments = uint64(pays)
	s.CreatedAt, s.UpdatedAt = fromNS(created), fromNS(updated)
	s.CancelledAt = fromNS(cancelled)
	s.CreditCount = uint64(credits)
	return &s, nil
}

func (t *tx) subWhere(where string, args ...any) (*store.ReceiverSubscription,
	error) {

	subs, err := collect(t, func(r pgx.Rows) (*store.ReceiverSubscription,
		error) {

		return scanSub(r)
	}, "SELECT "+subCols+" FROM subscriptions WHERE "+where, args...)
	switch {
	case err != nil:
		return nil, err
	case len(subs) == 0:
		return nil, store.ErrNotFound
	}
	return subs[0], nil
}

func (t *tx) Subscription(id store.SubID) (*store.ReceiverSubscription, error) {
	s, err := t.subWhere("id = $1", id[:])
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", id, err)
	}
	return s, nil
}

func (t *tx) SubscriptionByPublicID(p tlv.PublicID) (*store.ReceiverSubscription,
	error) {

	s, err := t.subWhere("public_id = $1", p[:])
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", p, err)
	}
	return s, nil
}

// validSubState mirrors the store's state numbers (1..6).
func validSubState(s store.SubState) bool {
	return s >= store.SubPending && s <= store.SubCancelledByPayer
}

func (t *tx) PutSubscription(s *store.ReceiverSubscription) error {
	switch {
	case s.ID.IsZero():
		return fmt.Errorf("%w: subscription without id", store.ErrInvalid)
	case !validSubState(s.State):
		return fmt.Errorf("%w: subscription %s state %d", store.ErrInvalid,
			s.ID, s.State)
	}
	if err := fitBigint("subscription "+s.ID.String(), []bigintField{
		{"rate_msat", uint64(s.Terms.RatePerSecond)},
		{"min_payment_msat", uint64(s.Terms.MinPayment)},
		{"increment_msat", uint64(s.Terms.Increment)},
		{"remainder_msat", uint64(s.Remainder)},
		{"total_paid_msat", uint64(s.TotalPaid)},
		{"total_seconds", s.TotalSeconds},
	}); err != nil {
		return err
	}
	pub := s.ID.PublicID()
	_, err := t.exec(`INSERT INTO subscriptions (public_id, `+subCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
			$14, $15, $16, $17, $18, $19)
		ON CONFLICT (id) DO UPDATE SET plan_id = $3, rate_msat = $4,
			min_payment_msat = $5, increment_msat = $6, grace_ns = $7,
			max_prepay_ns = $8, state = $9, paid_until_ns = $10,
			remainder_msat = $11, last_seq = $12,
			total_paid_msat = $13, total_seconds = $14,
			payments = $15, created_ns = $16, updated_ns = $17,
			cancelled_ns = $18, credit_count = $19`,
		pub[:], s.ID[:], string(s.PlanID), uint64(s.Terms.RatePerSecond),
		uint64(s.Terms.MinPayment), uint64(s.Terms.Increment),
		int64(s.Terms.Grace), int64(s.Terms.MaxPrepay), int16(s.State),
		ns(s.PaidUntil), uint64(s.Remainder), s.LastSeq,
		uint64(s.TotalPaid), s.TotalSeconds, s.Payments,
		ns(s.CreatedAt), ns(s.UpdatedAt), ns(s.CancelledAt),
		s.CreditCount)
	if err != nil {
		return fmt.Errorf("subscription %s: %w", s.ID, err)
	}
	return nil
}

func (t *tx) ForEachSubscription(state store.SubState, page store.Page,
	fn func(*store.ReceiverSubscription) error) error {

	after := []byte{}
	if page.After != nil {
		after = page.After[:]
	}
	left := page.Limit
	for {
		n := scanChunk
		if page.Limit > 0 {
			n = min(n, left)
		}
		subs, err := collect(t, func(r pgx.Rows) (
			*store.ReceiverSubscription, error) {

			return scanSub(r)
		}, "SELECT "+subCols+" FROM subscriptions "+
			"WHERE id > $1 AND ($2 = 0 OR state = $2) "+
			"ORDER BY id LIMIT $3", after, int16(state), n)
		if err != nil {
			return err
		}
		for _, s := range subs {
			if err := fn(s); err != nil {
				return stop(err)
			}
		}
		if page.Limit > 0 {
			left -= len(subs)
			if left <= 0 {
				return nil
			}
		}
		if len(subs) < n {
			return nil
		}
		last := subs[len(subs)-1].ID
		after = last[:]
	}
}

// dueExpr is when the expiry scan next has to look at a subscription:
// the end of paid time while active, the end of grace once past due. It
// is the expression of the subscriptions_due index (migration 0002),
// written identically so the planner uses it, and saturates rather than
// overflow.
const dueExpr = "(CASE WHEN state = 3 AND grace_ns > 0 " +
	"THEN LEAST(paid_until_ns, 9223372036854775807 - grace_ns) + grace_ns " +
	"ELSE paid_until_ns END)"

// dueNS is dueExpr of a subscription read from the table.
func dueNS(s *store.ReceiverSubscription) int64 {
	paid, grace := ns(s.PaidUntil), int64(s.Terms.Grace)
	if s.State != store.SubPastDue || grace <= 0 {
		return paid
	}
	return min(paid, math.MaxInt64-grace) + grace
}

func (t *tx) SubscriptionsDueBefore(before time.Time,
	fn func(*store.ReceiverSubscription) error) error {

	end := ns(before)
	if before.UnixNano() < 0 {
		end = 0
	}
	var (
		afterPaid int64 = -1 << 63
		afterID         = []byte{}
	)
	for {
		subs, err := collect(t, func(r pgx.Rows) (
			*store.ReceiverSubscription, error) {

			return scanSub(r)
		}, "SELECT "+subCols+" FROM subscriptions "+
			"WHERE state IN (2, 3) AND "+dueExpr+" < $1 "+
			"AND ("+dueExpr+", id) > ($2, $3) "+
			"ORDER BY "+dueExpr+", id LIMIT $4",
			end, afterPaid, afterID, scanChunk)
		if err != nil {
			return err
		}
		for _, s := range subs {
			if err := fn(s); err != nil {
				return stop(err)
			}
		}
		if len(subs) < scanChunk {
			return nil
		}
		last := subs[len(subs)-1]
		afterPaid, afterID = dueNS(last), last.ID[:]
	}
}

// ---- payments ----

const payCols = `hash, sub_id, seq, amount_msat, seconds, settle_index,
	state, reason, received_ns, rate_msat, before_paid_until_ns,
	before_remainder_msat, before_state, credit_no`

func scanPayment(r pgx.Row) (*store.Payment, error) {
	var (
		p                         store.Payment
		hash, sub                 []byte
		amt, secs, settle         int64
		state, beforeState        int16
		received, rate, bpu, brem int64
		creditNo                  int64
	)
	err := r.Scan(&hash, &sub, &p.Seq, &amt, &secs, &settle, &state,
		&p.Reason, &received, &rate, &bpu, &brem, &beforeState, &creditNo)
	if err != nil {
		return nil, err
	}
	if err := copyFixed(p.Hash[:], hash, "payment hash"); err != nil {
		return nil, err
	}
	if err := copyFixed(p.SubID[:], sub, "subscription id"); err != nil {
		return nil, err
	}
	p.Amount = lnwire.MilliSatoshi(amt)
	p.Seconds = uint64(secs)
	p.SettleIndex = uint64(settle)
	p.State = store.PaymentState(state)
	p.ReceivedAt = fromNS(received)
	p.Rate = lnwire.MilliSatoshi(rate)
	p.BeforePaidUntil = fromNS(bpu)
	p.BeforeRemainder = lnwire.MilliSatoshi(brem)
	p.BeforeState = store.SubState(beforeState)
	p.CreditNo = uint64(creditNo)
	return &p, nil
}

func (t *tx) payments(sql string, args ...any) ([]*store.Payment, error) {
	return collect(t, func(r pgx.Rows) (*store.Payment, error) {
		return scanPayment(r)
	}, "SELECT "+payCols+" FROM payments WHERE "+sql, args...)
}

func (t *tx) Payment(hash store.Hash) (*store.Payment, error) {
	ps, err := t.payments("hash = $1", hash[:])
	switch {
	case err != nil:
		return nil, fmt.Errorf("payment %s: %w", hash, err)
	case len(ps) == 0:
		return nil, fmt.Errorf("payment %s: %w", hash, store.ErrNotFound)
	}
	return ps[0], nil
}

func (t *tx) PaymentBySeq(sub store.SubID, seq uint64) (*store.Payment, error) {
	ps, err := t.payments("sub_id = $1 AND seq = $2 ORDER BY hash LIMIT 1",
		sub[:], seq)
	switch {
	case err != nil:
		return nil, fmt.Errorf("payment %s/%d: %w", sub, seq, err)
	case len(ps) == 0:
		return nil, fmt.Errorf("payment %s/%d: %w", sub, seq,
			store.ErrNotFound)
	}
	return ps[0], nil
}

func (t *tx) PutPayment(p *store.Payment) error {
	if p.State < store.PaymentCredited || p.State > store.PaymentUnclaimed {
		return fmt.Errorf("%w: payment %s state %d", store.ErrInvalid,
			p.Hash, p.State)
	}
	if err := fitBigint("payment "+p.Hash.String(), []bigintField{
		{"amount_msat", uint64(p.Amount)}, {"seconds", p.Seconds},
		{"settle_index", p.SettleIndex}, {"rate_msat", uint64(p.Rate)},
		{"before_remainder_msat", uint64(p.BeforeRemainder)},
		{"credit_no", p.CreditNo},
	}); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO payments (`+payCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
			$14)
		ON CONFLICT (hash) DO UPDATE SET sub_id = $2, seq = $3,
			amount_msat = $4, seconds = $5, settle_index = $6,
			state = $7, reason = $8, received_ns = $9, rate_msat = $10,
			before_paid_until_ns = $11, before_remainder_msat = $12,
			before_state = $13, credit_no = $14`,
		p.Hash[:], nullSub(p.SubID), p.Seq, uint64(p.Amount), p.Seconds,
		p.SettleIndex, int16(p.State), p.Reason, ns(p.ReceivedAt),
		uint64(p.Rate), ns(p.BeforePaidUntil), uint64(p.BeforeRemainder),
		int16(p.BeforeState), p.CreditNo)
	if err != nil {
		return fmt.Errorf("payment %s: %w", p.Hash, err)
	}
	return nil
}

func (t *tx) ForEachPayment(sub store.SubID, afterSeq uint64,
	fn func(*store.Payment) error) error {

	ps, err := t.payments("sub_id = $1 AND seq > $2 ORDER BY seq, hash "+
		"LIMIT $3", sub[:], afterSeq, scanChunk)
	for {
		if err != nil {
			return err
		}
		for _, p := range ps {
			if err := fn(p); err != nil {
				return stop(err)
			}
		}
		if len(ps) < scanChunk {
			return nil
		}
		last := ps[len(ps)-1]
		ps, err = t.payments("sub_id = $1 AND (seq, hash) > ($2, $3) "+
			"ORDER BY seq, hash LIMIT $4", sub[:], last.Seq,
			last.Hash[:], scanChunk)
	}
}

func (t *tx) DeletePayment(hash store.Hash) error {
	// A held mark of a deleted payment goes with it (only refused
	// payments are deleted, and they are never held).
	if _, err := t.exec("DELETE FROM held WHERE hash = $1",
		hash[:]); err != nil {

		return err
	}
	tag, err := t.exec("DELETE FROM payments WHERE hash = $1", hash[:])
	switch {
	case err != nil:
		return fmt.Errorf("payment %s: %w", hash, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("payment %s: %w", hash, store.ErrNotFound)
	}
	return nil
}

func (t *tx) PruneRefused(sub store.SubID, keep int) (int, error) {
	keep = max(keep, 0)
	tag, err := t.exec(`DELETE FROM payments WHERE hash IN (
		SELECT hash FROM payments
		WHERE state = 2 AND sub_id = $1
		ORDER BY received_ns DESC, hash DESC OFFSET $2)`, sub[:], keep)
	if err != nil {
		return 0, fmt.Errorf("prune refused payments: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ---- refusals ----

func checkReason(reason string) error {
	if reason == "" || len(reason) > maxReasonLen {
		return fmt.Errorf("%w: refusal reason %q must be 1..%d bytes",
			store.ErrInvalid, reason, maxReasonLen)
	}
	return nil
}

func (t *tx) AddRefusal(reason string) (uint64, error) {
	if err := checkReason(reason); err != nil {
		return 0, err
	}
	var n int64
	err := t.queryRow(`INSERT INTO refusal_counts (reason, n) VALUES ($1, 1)
		ON CONFLICT (reason) DO UPDATE SET n = refusal_counts.n + 1
		RETURNING n`, []any{reason}, &n)
	if err == nil {
		t.wrote = true
	}
	return uint64(n), err
}

func (t *tx) ForEachRefusalCount(fn func(reason string, n uint64) error) error {
	type count struct {
		reason string
		n      int64
	}
	counts, err := collect(t, func(r pgx.Rows) (count, error) {
		var c count
		return c, r.Scan(&c.reason, &c.n)
	}, `SELECT reason, n FROM refusal_counts ORDER BY reason COLLATE "C"`)
	if err != nil {
		return err
	}
	for _, c := range counts {
		if err := fn(c.reason, uint64(c.n)); err != nil {
			return stop(err)
		}
	}
	return nil
}

func (t *tx) LastRefusalEvent(sub store.SubID, reason string) (time.Time, error) {
	if err := checkReason(reason); err != nil {
		return time.Time{}, err
	}
	var at int64
	err := t.queryRow("SELECT at_ns FROM refusal_events WHERE sub_id = $1 "+
		"AND reason = $2", []any{sub[:], reason}, &at)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, nil
	}
	return fromNS(at), err
}

func (t *tx) SetLastRefusalEvent(sub store.SubID, reason string,
	at time.Time) error {

	if err := checkReason(reason); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO refusal_events (sub_id, reason, at_ns)
		VALUES ($1, $2, $3) ON CONFLICT (sub_id, reason)
		DO UPDATE SET at_ns = $3`, sub[:], reason, ns(at))
	return err
}

func (t *tx) ClearRefusalEvents(sub store.SubID) error {
	_, err := t.exec("DELETE FROM refusal_events WHERE sub_id = $1", sub[:])
	return err
}

// ---- this node's lnd resume points ----

func (t *tx) nodeIndex(col string) (uint64, error) {
	var v int64
	err := t.queryRow("SELECT "+col+" FROM node_state WHERE node = $1",
		[]any{t.node[:]}, &v)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return uint64(v), err
}

func (t *tx) setNodeIndex(col string, v uint64) error {
	_, err := t.exec("INSERT INTO node_state (node, "+col+") "+
		"VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET "+col+" = $2",
		t.node[:], v)
	return err
}

func (t *tx) SettleIndex() (uint64, error) { return t.nodeIndex("settle_index") }

func (t *tx) SetSettleIndex(v uint64) error {
	return t.setNodeIndex("settle_index", v)
}

func (t *tx) AddIndex() (uint64, error) { return t.nodeIndex("add_index") }

func (t *tx) SetAddIndex(v uint64) error { return t.setNodeIndex("add_index", v) }

// ---- events ----

const eventCols = `id, uid, sub_id, type, payload, created_ns, attempts,
	next_attempt_ns, last_error, delivered, delivered_ns, finished_at`

// finishedAtCol is Event.FinishedAt as stored: NULL for nil (not kept),
// else the endpoint ids concatenated.
func finishedAtCol(eps []store.EndpointID) []byte {
	if eps == nil {
		return nil
	}
	out := make([]byte, 0, len(eps)*len(store.EndpointID{}))
	for _, ep := range eps {
		out = append(out, ep[:]...)
	}
	return out
}

// finishedAtOf reads finishedAtCol back; valid is false for NULL.
func finishedAtOf(b []byte, valid bool) ([]store.EndpointID, error) {
	if !valid {
		return nil, nil
	}
	n := len(store.EndpointID{})
	if len(b)%n != 0 {
		return nil, fmt.Errorf("%w: finished_at of %d bytes",
			store.ErrCorrupt, len(b))
	}
	out := make([]store.EndpointID, 0, len(b)/n)
	for i := 0; i < len(b); i += n {
		var ep store.EndpointID
		copy(ep[:], b[i:i+n])
		out = append(out, ep)
	}
	return out, nil
}

func scanEvent(r pgx.Row) (*store.Event, error) {
	var (
		ev                          store.Event
		id, created, attempts, next int64
		delivered                   int64
		uid, sub, finished          []byte
		typ                         int32
	)
	err := r.Scan(&id, &uid, &sub, &typ, &ev.Payload, &created, &attempts,
		&next, &ev.LastError, &ev.Delivered, &delivered, &finished)
	if err != nil {
		return nil, err
	}
	ev.FinishedAt, err = finishedAtOf(finished, finished != nil)
	if err != nil {
		return nil, err
	}
	if err := copyFixed(ev.UID[:], uid, "event uid"); err != nil {
		return nil, err
	}
	if err := copyFixed(ev.SubID[:], sub, "subscription id"); err != nil {
		return nil, err
	}
	ev.ID = store.EventID(id)
	ev.Type = store.EventType(typ)
	if len(ev.Payload) == 0 {
		ev.Payload = nil
	}
	ev.CreatedAt = fromNS(created)
	ev.Attempts = uint32(attempts)
	ev.NextAttempt = fromNS(next)
	ev.DeliveredAt = fromNS(delivered)
	return &ev, nil
}

func (t *tx) events(sql string, args ...any) ([]*store.Event, error) {
	return collect(t, func(r pgx.Rows) (*store.Event, error) {
		return scanEvent(r)
	}, "SELECT "+eventCols+" FROM events WHERE "+sql, args...)
}

// eventOrderLock is the advisory lock key ("satevnt") that makes event ids
// commit in id order; see lockEventOrder.
const eventOrderLock int64 = 0x73617465766e74

// lockEventOrder takes eventOrderLock for the rest of the transaction,
// before its first event id is drawn from the sequence. A sequence hands
// out ids as transactions ask, not as they commit: a step that drew N+1
// could commit before the one that drew N, and a reader that moved its
// cursor past N+1 (the webhook dispatcher) would never see N. Under the
// lock, a step draws its ids only once every step that drew a lower one
// has ended, and that step's commit is visible before the lock is
// released, so a reader that sees N+1 sees N (or N was rolled back: a gap,
// never an id committed below a cursor). The lock is per database: steps
// that append events queue behind each other cluster-wide, from the
// append to their COMMIT; the rest of a step still runs concurrently. A
// waiting step is not aborted: it goes on from where it waited.
func (t *tx) lockEventOrder() error {
	if t.eventOrder {
		return nil
	}
	start := time.Now()
	_, err := t.exec("SELECT pg_advisory_xact_lock($1)", eventOrderLock)
	if t.stats != nil {
		t.stats.eventOrderNS.Add(int64(time.Since(start)))
	}
	if err != nil {
		return fmt.Errorf("event order lock: %w", err)
	}
	t.eventOrder = true
	return nil
}

func (t *tx) AppendEvent(ev *store.Event) error {
	if err := t.lockEventOrder(); err != nil {
		return err
	}
	if ev.UID.IsZero() {
		uid, err := store.NewEventUID()
		if err != nil {
			return err
		}
		ev.UID = uid
	}
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	var id int64
	err := t.queryRow(`INSERT INTO events (uid, sub_id, type, payload,
			created_ns, attempts, next_attempt_ns, last_error, delivered,
			delivered_ns, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		[]any{ev.UID[:], ev.SubID[:], int32(ev.Type), payload,
			ns(ev.CreatedAt), int64(ev.Attempts), ns(ev.NextAttempt),
			ev.LastError, ev.Delivered, ns(ev.DeliveredAt),
			finishedAtCol(ev.FinishedAt)}, &id)
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	t.wrote = true
	ev.ID = store.EventID(id)
	return nil
}

func (t *tx) Event(id store.EventID) (*store.Event, error) {
	evs, err := t.events("id = $1", int64(id))
	switch {
	case err != nil:
		return nil, fmt.Errorf("event %d: %w", id, err)
	case len(evs) == 0:
		return nil, fmt.Errorf("event %d: %w", id, store.ErrNotFound)
	}
	return evs[0], nil
}

func (t *tx) PutEvent(ev *store.Event) error {
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	tag, err := t.exec(`UPDATE events SET uid = $2, sub_id = $3, type = $4,
			payload = $5, created_ns = $6, attempts = $7,
			next_attempt_ns = $8, last_error = $9, delivered = $10,
			delivered_ns = $11, finished_at = $12
		WHERE id = $1`, int64(ev.ID), ev.UID[:], ev.SubID[:],
		int32(ev.Type), payload, ns(ev.CreatedAt), int64(ev.Attempts),
		ns(ev.NextAttempt), ev.LastError, ev.Delivered,
		ns(ev.DeliveredAt), finishedAtCol(ev.FinishedAt))
	switch {
	case err != nil:
		return fmt.Errorf("event %d: %w", ev.ID, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("event %d: %w (use AppendEvent for new events)",
			ev.ID, store.ErrNotFound)
	}
	return nil
}

func (t *tx) MarkEventDelivered(id store.EventID, at time.Time) error {
	tag, err := t.exec("UPDATE events SET delivered = true, "+
		"delivered_ns = $2 WHERE id = $1", int64(id), ns(at))
	switch {
	case err != nil:
		return fmt.Errorf("event %d: %w", id, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("event %d: %w", id, store.ErrNotFound)
	}
	return nil
}

func (t *tx) ForEachPendingEvent(after store.EventID,
	fn func(*store.Event) error) error {

	if uint64(after) > 1<<63-1 {
		return nil
	}
	cursor := int64(after)
	for {
		evs, err := t.events("NOT delivered AND id > $1 ORDER BY id "+
			"LIMIT $2", cursor, scanChunk)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return stop(err)
			}
		}
		if len(evs) < scanChunk {
			return nil
		}
		cursor = int64(evs[len(evs)-1].ID)
	}
}

// ForEachEvent reads a bounded page in one query on the primary key
// (limit > 0, the API's case); without a limit it walks in chunks.
func (t *tx) ForEachEvent(after store.EventID, limit int,
	fn func(*store.Event) error) error {

	if uint64(after) > 1<<63-1 {
		return nil
	}
	cursor := int64(after)
	for {
		n := scanChunk
		if limit > 0 {
			n = limit
		}
		evs, err := t.events("id > $1 ORDER BY id LIMIT $2", cursor, n)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return stop(err)
			}
		}
		if limit > 0 || len(evs) < n {
			return nil
		}
		cursor = int64(evs[len(evs)-1].ID)
	}
}

// LastEventID reads the end of the primary key: one index probe.
func (t *tx) LastEventID() (store.EventID, error) {
	var id int64
	err := t.queryRow("SELECT coalesce(max(id), 0) FROM events", nil, &id)
	if err != nil {
		return 0, fmt.Errorf("last event id: %w", err)
	}
	return store.EventID(id), nil
}

func (t *tx) EventByUID(uid store.EventUID) (*store.Event, error) {
	evs, err := t.events("uid = $1", uid[:])
	switch {
	case err != nil:
		return nil, fmt.Errorf("event %s: %w", uid, err)
	case len(evs) == 0:
		return nil, fmt.Errorf("event %s: %w", uid, store.ErrNotFound)
	}
	return evs[0], nil
}

// ---- webhook deliveries ----

func (t *tx) Delivery(ep store.EndpointID, id store.EventID) (*store.Delivery,
	error) {

	d := &store.Delivery{Endpoint: ep, Event: id}
	var (
		state                                int16
		attempts, next, finished, retrySince int64
	)
	err := t.queryRow(`SELECT state, attempts, next_attempt_ns, last_error,
			finished_ns, retry_since_ns, manual
		FROM deliveries WHERE endpoint = $1 AND event_id = $2`,
		[]any{ep[:], int64(id)}, &state, &attempts, &next, &d.LastError,
		&finished, &retrySince, &d.Manual)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return d, nil
	case err != nil:
		return nil, err
	}
	d.State = store.DeliveryState(state)
	d.Attempts = uint32(attempts)
	d.NextAttempt = fromNS(next)
	d.FinishedAt = fromNS(finished)
	d.RetrySince = fromNS(retrySince)
	return d, nil
}

func (t *tx) PutDelivery(d *store.Delivery) error {
	_, err := t.exec(`INSERT INTO deliveries (endpoint, event_id, state,
			attempts, next_attempt_ns, last_error, finished_ns,
			retry_since_ns, manual)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (endpoint, event_id) DO UPDATE SET state = $3,
			attempts = $4, next_attempt_ns = $5, last_error = $6,
			finished_ns = $7, retry_since_ns = $8, manual = $9`,
		d.Endpoint[:], int64(d.Event), int16(d.State), int64(d.Attempts),
		ns(d.NextAttempt), d.LastError, ns(d.FinishedAt),
		ns(d.RetrySince), d.Manual)
	if err != nil {
		return fmt.Errorf("delivery of event %d to %s: %w", d.Event,
			d.Endpoint, err)
	}
	return nil
}

// DeleteDelivery removes the row of event id at endpoint ep (nothing if
// there is none); the pair then reads as never attempted.
func (t *tx) DeleteDelivery(ep store.EndpointID, id store.EventID) error {
	_, err := t.exec("DELETE FROM deliveries WHERE endpoint = $1 AND "+
		"event_id = $2", ep[:], int64(id))
	if err != nil {
		return fmt.Errorf("delete delivery of event %d to %s: %w", id, ep,
			err)
	}
	return nil
}

// DeleteDeliveries removes up to max rows of endpoint ep, oldest event
// first, and reports how many it removed, as the badger store does.
func (t *tx) DeleteDeliveries(ep store.EndpointID, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	tag, err := t.exec(`DELETE FROM deliveries WHERE endpoint = $1 AND
		event_id IN (SELECT event_id FROM deliveries WHERE endpoint = $1
			ORDER BY event_id LIMIT $2)`, ep[:], max)
	if err != nil {
		return 0, fmt.Errorf("delete deliveries of %s: %w", ep, err)
	}
	return int(tag.RowsAffected()), nil
}

// DeliveryEndpoints lists every endpoint that has delivery rows, in id
// order. The recursive query skips from one endpoint to the next on the
// primary key (a loose index scan): one index probe per endpoint, not a
// read of every row.
func (t *tx) DeliveryEndpoints() ([]store.EndpointID, error) {
	eps, err := collect(t, func(r pgx.Rows) (store.EndpointID, error) {
		var (
			ep  store.EndpointID
			raw []byte
		)
		if err := r.Scan(&raw); err != nil {
			return ep, err
		}
		return ep, copyFixed(ep[:], raw, "endpoint id")
	}, `WITH RECURSIVE eps (endpoint) AS (
			(SELECT endpoint FROM deliveries ORDER BY endpoint LIMIT 1)
			UNION ALL
			SELECT (SELECT d.endpoint FROM deliveries d
				WHERE d.endpoint > eps.endpoint
				ORDER BY d.endpoint LIMIT 1)
			FROM eps WHERE eps.endpoint IS NOT NULL)
		SELECT endpoint FROM eps WHERE endpoint IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("delivery endpoints: %w", err)
	}
	return eps, nil
}

// ---- this node's held HTLCs ----

func (t *tx) MarkHeld(hash store.Hash) error {
	_, err := t.exec("INSERT INTO held (node, hash) VALUES ($1, $2) "+
		"ON CONFLICT DO NOTHING", t.node[:], hash[:])
	return err
}

func (t *tx) ClearHeld(hash store.Hash) error {
	_, err := t.exec("DELETE FROM held WHERE node = $1 AND hash = $2",
		t.node[:], hash[:])
	return err
}

// HeldAt implements store.ReceiverTx: the held table is keyed by node, so
// a row of another node means that node's lnd holds the HTLC.
func (t *tx) HeldAt(hash store.Hash) (bool, bool, error) {
	var here, elsewhere bool
	err := t.queryRow("SELECT "+
		"coalesce(bool_or(node = $1), false), "+
		"coalesce(bool_or(node <> $1), false) "+
		"FROM held WHERE hash = $2", []any{t.node[:], hash[:]},
		&here, &elsewhere)
	if err != nil {
		return false, false, fmt.Errorf("held at: %w", err)
	}
	return here, elsewhere, nil
}

func (t *tx) ForEachHeld(fn func(store.Hash) error) error {
	after := []byte{}
	for {
		hashes, err := collect(t, func(r pgx.Rows) (store.Hash, error) {
			var (
				h   store.Hash
				raw []byte
			)
			if err := r.Scan(&raw); err != nil {
				return h, err
			}
			return h, copyFixed(h[:], raw, "held hash")
		}, "SELECT hash FROM held WHERE node = $1 AND hash > $2 "+
			"ORDER BY hash LIMIT $3", t.node[:], after, scanChunk)
		if err != nil {
			return err
		}
		for _, h := range hashes {
			if err := fn(h); err != nil {
				return stop(err)
			}
		}
		if len(hashes) < scanChunk {
			return nil
		}
		last := hashes[len(hashes)-1]
		after = last[:]
	}
}

func (t *tx) ForEachDelivery(ep store.EndpointID, after store.EventID,
	fn func(*store.Delivery) error) error {

	if uint64(after) > 1<<63-1 {
		return nil
	}
	cursor := int64(after)
	for {
		ds, err := collect(t, func(r pgx.Rows) (*store.Delivery, error) {
			d := &store.Delivery{Endpoint: ep}
			var (
				id, attempts, next, finished, since int64
				state                               int16
			)
			err := r.Scan(&id, &state, &attempts, &next,
				&d.LastError, &finished, &since, &d.Manual)
			d.Event = store.EventID(id)
			d.State = store.DeliveryState(state)
			d.Attempts = uint32(attempts)
			d.NextAttempt = fromNS(next)
			d.FinishedAt = fromNS(finished)
			d.RetrySince = fromNS(since)
			return d, err
		}, `SELECT event_id, state, attempts, next_attempt_ns, last_error,
				finished_ns, retry_since_ns, manual
			FROM deliveries WHERE endpoint = $1 AND event_id > $2
			ORDER BY event_id LIMIT $3`, ep[:], cursor, scanChunk)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := fn(d); err != nil {
				return stop(err)
			}
		}
		if len(ds) < scanChunk {
			return nil
		}
		cursor = int64(ds[len(ds)-1].Event)
	}
}
