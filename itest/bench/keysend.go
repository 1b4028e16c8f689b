package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/tlv"
)

// LevelResult is one benchmark at one in-flight bound.
type LevelResult struct {
	InFlight int
	// Rate is completed (A, A': SUCCEEDED at alice; B: credited at the
	// receiver) payments per second in the measurement window.
	Rate float64
	// Count is the payments Rate counts.
	Count int
	// Failed counts payments that did not succeed.
	Failed int
	// Lat is A/A' latency (send to SUCCEEDED) or, for B, attempt write to
	// credit visible in the receiver's API.
	Lat Latencies
	// SenderLat is B only: attempt write to SUCCEEDED recorded by the
	// sender.
	SenderLat Latencies
	// VisLag is B only: credit first seen in the receiver's API minus
	// its payment.received event's created_at (written in the credit's
	// step, before its fsync and before the settle): an upper bound of
	// settle -> credit visible.
	VisLag Latencies
	// FeeMsat is the routing fee of one payment (A only).
	FeeMsat int64
	// Rounds are the rates of each round, in run order, when the level
	// ran more than once; Rate is then their median (mergeRounds).
	Rounds []float64
}

// window is a measurement window: payments completed inside it count.
type window struct{ start, end time.Time }

func (w window) has(t time.Time) bool {
	return !t.Before(w.start) && t.Before(w.end)
}

func (w window) seconds() float64 { return w.end.Sub(w.start).Seconds() }

// keysendLoop is benchmark A (and A'): level workers, each sending one
// keysend with satstream's records at a time and waiting for SUCCEEDED, for
// warmup plus measure; payments that complete in the measure window count.
func keysendLoop(ctx context.Context, router lndclient.RouterClient,
	dest route.Vertex, amt, maxFee lnwire.MilliSatoshi, level int,
	warmup, measure time.Duration) (LevelResult, error) {

	res := LevelResult{InFlight: level}
	start := time.Now()
	w := window{start.Add(warmup), start.Add(warmup + measure)}
	var (
		mu     sync.Mutex
		failed atomic.Int64
		fee    atomic.Int64
		wg     sync.WaitGroup
		first  error
	)
	for i := range level {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sub tlv.SubscriptionID
			_, _ = rand.Read(sub[:])
			for seq := uint64(1); time.Now().Before(w.end) &&
				ctx.Err() == nil; seq++ {

				t0 := time.Now()
				st, err := keysend(ctx, router, dest, amt, maxFee,
					sub, seq)
				t1 := time.Now()
				if err != nil || st.State != lnrpc.Payment_SUCCEEDED {
					failed.Add(1)
					if err == nil {
						err = fmt.Errorf("payment %v",
							st.FailureReason)
					}
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("worker %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				fee.Store(int64(st.Fee))
				if w.has(t1) {
					mu.Lock()
					res.Count++
					if !t0.Before(w.start) {
						res.Lat = append(res.Lat, t1.Sub(t0))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	res.Failed = int(failed.Load())
	res.FeeMsat = fee.Load()
	res.Rate = float64(res.Count) / w.seconds()
	if res.Count == 0 {
		return res, fmt.Errorf("no payment succeeded: %w", first)
	}
	return res, nil
}

// baselineShift moves satstream's record types to a range no satstream
// receiver reads (0x5353xxxx -> 0x5354xxxx: still odd, still custom, still
// 5-byte BigSize types), so the payments of A and A' carry records of exactly
// the size and values B's carry, and a satstream-receiver beside carol
// (started and stopped around B's windows, which sit between those of A')
// takes them for somebody else's keysend: never credits or refuses them, and
// after a restart replays their settles as "not ours".
const baselineShift = 1 << 16

// baselineRecords are the baseline's custom records: satstream's version,
// subscription id and sequence under shifted types.
func baselineRecords(sub tlv.SubscriptionID, seq uint64) (
	map[uint64][]byte, error) {

	recs := tlv.Records{Version: tlv.Version1, SubscriptionID: sub,
		Sequence: seq}
	ours, err := recs.Encode()
	if err != nil {
		return nil, err
	}
	custom := make(map[uint64][]byte, len(ours)+1)
	for typ, v := range ours {
		custom[typ+baselineShift] = v
	}
	return custom, nil
}

// isBaseline reports whether custom records are the baseline's.
func isBaseline(custom map[uint64][]byte) bool {
	_, ok := custom[tlv.TypeVersion+baselineShift]
	return ok
}

// keysend pays amt to dest with the baseline's records (satstream's,
// shifted) and a fresh preimage, and waits for the final state.
func keysend(ctx context.Context, router lndclient.RouterClient,
	dest route.Vertex, amt, maxFee lnwire.MilliSatoshi,
	sub tlv.SubscriptionID, seq uint64) (lndclient.PaymentStatus, error) {

	var pre lntypes.Preimage
	if _, err := rand.Read(pre[:]); err != nil {
		return lndclient.PaymentStatus{}, err
	}
	custom, err := baselineRecords(sub, seq)
	if err != nil {
		return lndclient.PaymentStatus{}, err
	}
	custom[record.KeySendType] = pre[:]
	hash := pre.Hash()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	statuses, errs, err := router.SendPayment(ctx,
		lndclient.SendPaymentRequest{
			Target:        dest,
			Amount:        btcutil.Amount(amt / 1000),
			MaxFeeMsat:    maxFee,
			Timeout:       time.Minute,
			PaymentHash:   &hash,
			CustomRecords: custom,
		})
	if err != nil {
		return lndclient.PaymentStatus{}, err
	}
	return finalStatus(ctx, statuses, errs)
}

// finalStatus waits for a payment's final state (SUCCEEDED or FAILED) on
// SendPayment's streams.
func finalStatus(ctx context.Context,
	statuses <-chan lndclient.PaymentStatus, errs <-chan error) (
	lndclient.PaymentStatus, error) {

	for {
		select {
		case st, ok := <-statuses:
			if !ok {
				return st, errors.New("status stream closed")
			}
			if st.State == lnrpc.Payment_SUCCEEDED ||
				st.State == lnrpc.Payment_FAILED {
				return st, nil
			}
		case err := <-errs:
			return lndclient.PaymentStatus{}, err
		case <-ctx.Done():
			return lndclient.PaymentStatus{}, ctx.Err()
		}
	}
}

// settleAtOnce is the trivial hold-mode program of A': it settles every
// baseline keysend carol holds as soon as lnd reports it ACCEPTED, and
// nothing else (no records decoded, no ledger). It runs only during the
// windows of A' (startSettler), so it never races the receiver over B's
// payments; it leaves any keysend without the baseline's records alone.
type settleAtOnce struct {
	lnd     *lndclient.LndServices
	errs    atomic.Int64
	settled atomic.Int64
	wg      sync.WaitGroup
}

// startSettler runs a settleAtOnce beside carol until the returned stop,
// which waits for every settle it started.
func startSettler(ctx context.Context, lnd *lndclient.LndServices) (
	*settleAtOnce, func(), error) {

	ctx, cancel := context.WithCancel(ctx)
	s := &settleAtOnce{lnd: lnd}
	if err := s.run(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	return s, func() {
		cancel()
		s.wg.Wait()
	}, nil
}

// run follows carol's invoice stream until ctx ends. The stream's reader
// is in wg too, so nothing is added to wg after the stop's Wait began.
func (s *settleAtOnce) run(ctx context.Context) error {
	invs, errs, err := s.lnd.Client.SubscribeInvoices(ctx,
		lndclient.InvoiceSubscriptionRequest{})
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-errs:
				s.errs.Add(1)
				return
			case inv, ok := <-invs:
				if !ok {
					return
				}
				if inv.IsKeysend &&
					(inv.State == invoices.ContractOpen ||
						inv.State == invoices.ContractAccepted) {

					s.wg.Add(1)
					go s.settle(ctx, inv.Hash)
				}
			}
		}
	}()
	return nil
}

// settle waits for hash to be ACCEPTED and settles it.
func (s *settleAtOnce) settle(ctx context.Context, hash lntypes.Hash) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ups, errs, err := s.lnd.Invoices.SubscribeSingleInvoice(ctx, hash)
	if err != nil {
		s.errs.Add(1)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-errs:
			return
		case u, ok := <-ups:
			if !ok {
				return
			}
			if u.State != invoices.ContractAccepted {
				if u.State == invoices.ContractSettled ||
					u.State == invoices.ContractCanceled {
					return
				}
				continue
			}
			if !baselineInvoice(&u.Invoice) {
				return
			}
			pre, ok := keysendPreimage(&u.Invoice)
			if !ok {
				s.errs.Add(1)
				return
			}
			if err := s.lnd.Invoices.SettleInvoice(ctx, pre); err != nil {
				s.errs.Add(1)
				return
			}
			s.settled.Add(1)
			return
		}
	}
}

// baselineInvoice reports whether an HTLC of inv carries the baseline's
// records.
func baselineInvoice(inv *lndclient.Invoice) bool {
	for _, h := range inv.Htlcs {
		if isBaseline(h.CustomRecords) {
			return true
		}
	}
	return false
}

// keysendPreimage finds the payer's preimage of a keysend invoice.
func keysendPreimage(inv *lndclient.Invoice) (lntypes.Preimage, bool) {
	if inv.Preimage != nil && inv.Preimage.Matches(inv.Hash) {
		return *inv.Preimage, true
	}
	for _, h := range inv.Htlcs {
		if raw, ok := h.CustomRecords[record.KeySendType]; ok {
			if pre, err := lntypes.MakePreimage(raw); err == nil &&
				pre.Matches(inv.Hash) {
				return pre, true
			}
		}
	}
	return lntypes.Preimage{}, false
}
