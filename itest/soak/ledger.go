package soak

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// senderPayment is one attempt as the sender's API lists it.
type senderPayment struct {
	Sequence uint64 `json:"sequence"`
	Hash     string `json:"payment_hash"`
	State    string `json:"state"`
	Cancel   bool   `json:"cancel"`
	Amount   uint64 `json:"amount_msat"`
}

// receiverPayment is one ledger entry as the receiver's API lists it.
type receiverPayment struct {
	Hash     string `json:"payment_hash"`
	Sequence uint64 `json:"sequence"`
	Amount   uint64 `json:"amount_msat"`
	State    string `json:"state"`
	Settled  bool   `json:"settled"`
}

func (s *soak) senderPayments(ctx context.Context, id string) (
	[]senderPayment, error) {

	var all []senderPayment
	after := uint64(0)
	for {
		var page struct {
			Payments  []senderPayment `json:"payments"`
			NextAfter uint64          `json:"next_after"`
		}
		if code := s.snd.do(ctx, "GET", fmt.Sprintf(
			"/v1/subscriptions/%s/payments?limit=1000&after=%d", id,
			after), nil, &page); code != 200 {
			return nil, fmt.Errorf("sender payments of %s: HTTP %d",
				id, code)
		}
		all = append(all, page.Payments...)
		if len(page.Payments) < 1000 {
			return all, nil
		}
		after = page.NextAfter
	}
}

func (s *soak) receiverPayments(ctx context.Context, id string) (
	[]receiverPayment, error) {

	var all []receiverPayment
	after := uint64(0)
	for {
		var page struct {
			Payments []receiverPayment `json:"payments"`
		}
		if code := s.rcv.do(ctx, "GET", fmt.Sprintf(
			"/v1/subscriptions/%s/payments?limit=1000&after_sequence=%d",
			id, after), nil, &page); code != 200 {
			return nil, fmt.Errorf("receiver payments of %s: HTTP %d",
				id, code)
		}
		all = append(all, page.Payments...)
		if len(page.Payments) < 1000 {
			return all, nil
		}
		after = page.Payments[len(page.Payments)-1].Sequence
	}
}

// carolSettled returns, per subscription id, the msat of every keysend
// the provider's lnd settled for it, by payment hash, paging through its
// invoices (hostile ones included).
func (s *soak) carolSettled(ctx context.Context) (
	map[string]map[string]uint64, error) {

	out := map[string]map[string]uint64{}
	offset := uint64(0)
	for {
		resp, err := s.carol.RPC().ListInvoices(ctx,
			&lnrpc.ListInvoiceRequest{IndexOffset: offset,
				NumMaxInvoices: 500})
		if err != nil {
			return nil, err
		}
		for _, inv := range resp.Invoices {
			if inv.State != lnrpc.Invoice_SETTLED ||
				len(inv.Htlcs) == 0 {
				continue
			}
			recs, err := tlv.Decode(inv.Htlcs[0].CustomRecords)
			if err != nil {
				continue
			}
			id := recs.SubscriptionID.PublicID().String()
			if out[id] == nil {
				out[id] = map[string]uint64{}
			}
			out[id][hex.EncodeToString(inv.RHash)] =
				uint64(inv.AmtPaidMsat)
		}
		if len(resp.Invoices) == 0 ||
			resp.LastIndexOffset <= offset {
			return out, nil
		}
		offset = resp.LastIndexOffset
	}
}

// setPaused pauses or resumes every subscription at the sender.
func (s *soak) setPaused(ctx context.Context, paused bool) error {
	op := "resume"
	if paused {
		op = "pause"
	}
	for _, id := range s.subs {
		code := s.snd.do(ctx, "POST", "/v1/subscriptions/"+id+"/"+op,
			nil, nil)
		if code != 200 {
			return fmt.Errorf("%s %s: HTTP %d", op, id, code)
		}
	}
	return nil
}

// invariant is what checkInvariant found.
type invariant struct {
	subs, credited int
	msat           uint64
	// maxBehind is how far the sender's paid_until estimate was
	// behind the receiver's at most.
	maxBehind time.Duration
}

// checkInvariant pauses every stream, waits until nothing is in flight
// and every credit settled, and checks the ledger invariant exactly, for
// every subscription:
//   - msat settled by the provider's lnd == msat credited by the
//     receiver == msat of the sender's succeeded payments, hash by hash;
//   - no (subscription, sequence) credited twice;
//   - the receiver's totals match its payments;
//   - the sender's paid_until estimate is not ahead of the receiver's
//     and behind it by less than the hold time (see below).
func (s *soak) checkInvariant(ctx context.Context) (invariant, error) {
	var res invariant
	if err := s.setPaused(ctx, true); err != nil {
		return res, err
	}
	err := regtest.Poll(ctx, 5*time.Minute, func() error {
		for _, id := range s.subs {
			var sv struct {
				InFlight int `json:"in_flight"`
			}
			if s.snd.do(ctx, "GET", "/v1/subscriptions/"+id, nil,
				&sv) != 200 {
				return fmt.Errorf("sender API down")
			}
			if sv.InFlight != 0 {
				return fmt.Errorf("%s: %d in flight", id,
					sv.InFlight)
			}
		}
		for _, id := range s.subs {
			pays, err := s.receiverPayments(ctx, id)
			if err != nil {
				return err
			}
			for _, p := range pays {
				if p.State == "credited" && !p.Settled {
					return fmt.Errorf("%s seq %d credited, "+
						"not settled yet", id, p.Sequence)
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("streams did not go quiet: %w", err)
	}

	settled, err := s.carolSettled(ctx)
	if err != nil {
		return res, err
	}
	for _, id := range s.subs {
		rpays, err := s.receiverPayments(ctx, id)
		if err != nil {
			return res, err
		}
		credited := map[string]uint64{}
		seqs := map[uint64]string{}
		var sum uint64
		for _, p := range rpays {
			if p.State != "credited" {
				continue
			}
			if prev, dup := seqs[p.Sequence]; dup {
				return res, fmt.Errorf("%s seq %d credited twice "+
					"(%s, %s)", id, p.Sequence, prev, p.Hash)
			}
			seqs[p.Sequence] = p.Hash
			credited[p.Hash] = p.Amount
			sum += p.Amount
		}
		spays, err := s.senderPayments(ctx, id)
		if err != nil {
			return res, err
		}
		paid := map[string]uint64{}
		for _, p := range spays {
			if p.State == "succeeded" && !p.Cancel {
				paid[p.Hash] = p.Amount
			}
		}
		if err := sameMsat("settled by lnd", settled[id], "credited",
			credited); err != nil {
			return res, fmt.Errorf("%s: %w", id, err)
		}
		if err := sameMsat("paid by the sender", paid, "credited",
			credited); err != nil {
			return res, fmt.Errorf("%s: %w", id, err)
		}
		var rv struct {
			TotalPaidMsat uint64    `json:"total_paid_msat"`
			Payments      uint64    `json:"payments"`
			PaidUntil     time.Time `json:"paid_until"`
		}
		if s.rcv.do(ctx, "GET", "/v1/subscriptions/"+id, nil, &rv) != 200 {
			return res, fmt.Errorf("receiver subscription %s", id)
		}
		if rv.TotalPaidMsat != sum || rv.Payments != uint64(len(credited)) {
			return res, fmt.Errorf("%s: receiver totals %d msat in %d "+
				"payments, its ledger %d msat in %d", id,
				rv.TotalPaidMsat, rv.Payments, sum, len(credited))
		}
		var sv struct {
			PaidUntil string `json:"paid_until"`
		}
		if s.snd.do(ctx, "GET", "/v1/subscriptions/"+id, nil, &sv) != 200 {
			return res, fmt.Errorf("sender subscription %s", id)
		}
		if len(credited) > 0 {
			sp, err := time.Parse(time.RFC3339, sv.PaidUntil)
			if err != nil {
				return res, fmt.Errorf("%s: sender paid_until %q: %w",
					id, sv.PaidUntil, err)
			}
			// The sender estimates from the send time of the
			// settled HTLC, the receiver credits from when it got
			// it (after a stream lapsed): the estimate is never
			// ahead (beyond the second the API shows) and behind
			// by at most a payment's latency, below the hold time.
			d := rv.PaidUntil.Sub(sp)
			if d <= -2*time.Second || d >= s.cfg.HoldTime {
				return res, fmt.Errorf("%s: sender estimates paid "+
					"until %v, receiver says %v", id, sp,
					rv.PaidUntil)
			}
			res.maxBehind = max(res.maxBehind, d)
		}
		res.subs++
		res.credited += len(credited)
		res.msat += sum
	}
	return res, nil
}

// sameMsat compares two hash -> msat maps and names the first difference.
func sameMsat(an string, a map[string]uint64, bn string,
	b map[string]uint64) error {

	for h, v := range a {
		if w, ok := b[h]; !ok || w != v {
			return fmt.Errorf("%s has %s: %d msat, %s has %d (present "+
				"%v)", an, h, v, bn, w, ok)
		}
	}
	for h, v := range b {
		if _, ok := a[h]; !ok {
			return fmt.Errorf("%s has %s: %d msat, %s has none", bn,
				h, v, an)
		}
	}
	return nil
}

// ledgerRows counts the keys of the receiver's ledger, all of them and
// the payment rows (store.KeyCount), opening it while the receiver is
// stopped.
func ledgerRows(ctx context.Context, dir string) (all, payments int,
	err error) {

	db, err := store.Open(ctx, dir, store.DefaultOptions())
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	if all, err = db.KeyCount(nil); err != nil {
		return 0, 0, err
	}
	payments, err = db.KeyCount([]byte{paymentPrefix})
	return all, payments, err
}

// paymentPrefix is the receiver's payment table in the store's key
// layout (store/keys.go pPayment: | hash(32) -> Payment).
const paymentPrefix = 0x14
