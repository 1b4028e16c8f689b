package sender

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/store"
)

// createAttempt reserves the payment's amount and fee limit against the
// caps, takes the next sequence and a fresh preimage, and stores the
// attempt, all in one store step, before anything is sent. When a cap
// would be passed it marks the subscription cap_reached instead.
func (e *Engine) createAttempt(ctx context.Context, r *subRun,
	cancel bool) (*attemptRun, error) {

	var preimage lntypes.Preimage
	if _, err := rand.Read(preimage[:]); err != nil {
		return nil, fmt.Errorf("make preimage: %w", err)
	}
	hash := sha256.Sum256(preimage[:])
	dest := e.pickDestination(r)

	var (
		a        *store.Attempt
		capped   string
		resumeAt time.Time
	)
	now := e.clock.Now()
	err := e.updateSub(ctx, r.id, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		a, capped, resumeAt = nil, "", time.Time{}
		if cancel && !(s.State == store.SenderCancelled &&
			s.CancelPending) {
			return errNotActive
		}
		if !cancel && s.State != store.SenderActive {
			return errNotActive
		}

		amt := PaymentAmount(s.Offer.Terms.RatePerSecond, s.Increment)
		if cancel {
			amt = cancelAmount
		}
		maxFee := MaxFee(amt, s.FeeLimitPPM, s.Limits.MaxFee)
		if cancel {
			// A proportional limit on 1 sat is below any base fee,
			// so the goodbye could never route. The receiver refuses
			// it, and a failed payment pays no fee, so the absolute
			// limit costs nothing.
			maxFee = s.Limits.MaxFee
		}
		need := amt + maxFee
		day := store.DayOf(now)
		spentToday, err := tx.SpendOn(s.ID, day)
		if err != nil {
			return err
		}
		committed := s.TotalSent + s.TotalFees + s.Reserved
		switch {
		case s.Limits.MaxTotal != 0 &&
			committed+need > s.Limits.MaxTotal:
			capped = fmt.Sprintf("total cap %d msat reached: %d "+
				"msat spent or reserved, the next payment "+
				"needs %d with its fee limit",
				s.Limits.MaxTotal, committed, need)

		case s.Limits.MaxPerDay != 0 &&
			spentToday+need > s.Limits.MaxPerDay:
			resumeAt = (day + 1).Start()
			capped = fmt.Sprintf("daily cap %d msat reached: %d "+
				"msat spent or reserved today, the next "+
				"payment needs %d with its fee limit; "+
				"resumes at %s", s.Limits.MaxPerDay,
				spentToday, need,
				resumeAt.Format(time.RFC3339))
		}
		if capped != "" {
			if cancel {
				// Don't pass a cap to say goodbye: cancel
				// locally only.
				s.CancelPending = false
				s.Reason += "; receiver not told: " + capped
				return nil
			}
			s.State = store.SenderCapReached
			s.Reason = capped
			s.ResumeAt = resumeAt
			return nil
		}

		a = &store.Attempt{
			SubID:    s.ID,
			Seq:      s.NextSeq,
			Preimage: store.Preimage(preimage),
			Hash:     store.Hash(hash),
			Amount:   amt,
			MaxFee:   maxFee,
			Day:      day,
			Cancel:   cancel,
			State:    store.AttemptCreated,
			// The node it is sent to; it changes only after lnd
			// failed it there (destinations.go).
			Destination: dest,
			CreatedAt:   now,
			UpdatedAt:   now,
		}
		s.NextSeq++
		s.Reserved += need
		if _, err := tx.AddSpend(s.ID, day, need); err != nil {
			return err
		}
		return tx.PutAttempt(a)
	})
	if err != nil {
		return nil, err
	}
	if a == nil {
		if capped != "" && !cancel {
			e.payLog.Infof("Subscription %s stopped: %s", r.id,
				capped)
			e.mu.Lock()
			e.scheduleLocked(r, e.clock.Now())
			e.mu.Unlock()
		}
		return nil, fmt.Errorf("%w: %s", ErrCapReached, capped)
	}
	e.payLog.Debugf("Subscription %s: stored attempt seq %d hash %x "+
		"amount %v max fee %v cancel=%v", a.SubID, a.Seq, a.Hash[:],
		a.Amount, a.MaxFee, a.Cancel)
	return &attemptRun{a: a, known: true}, nil
}

// releaseLocked gives back an attempt's whole reservation.
func (e *Engine) releaseLocked(tx store.SenderTx, s *store.SenderSubscription,
	a *store.Attempt) error {

	need := a.Amount + a.MaxFee
	s.Reserved -= need
	_, err := tx.ReleaseSpend(s.ID, a.Day, need)
	return err
}
