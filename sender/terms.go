package sender

import (
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/tlv"
)

// ErrBadTerms is wrapped by every error about a payer's terms that can't
// work with an offer (increment below the offer's minimum, buffer beyond its
// maximum prepayment, a price above the payer's maximum, ...).
var ErrBadTerms = errors.New("bad subscription terms")

// MinDefaultPayment is the smallest payment the sender makes unless the
// payer asks for less explicitly: below 1,000 sat routing fees eat a large
// share of every payment.
const MinDefaultPayment = lnwire.MilliSatoshi(1_000_000)

// Default fee limits: 1% of each payment and at most 1,000 sat, whichever is
// lower. Both apply to every payment.
const (
	DefaultFeeLimitPPM = 10_000
	DefaultFeeLimit    = lnwire.MilliSatoshi(1_000_000)
)

// Preset holds the per-use-case defaults from satstream's original idea.
type Preset struct {
	// Increment is the service time each payment buys.
	Increment time.Duration
	// Buffer is how far ahead the subscription stays paid.
	Buffer time.Duration
}

// Presets are the named use cases a payer can start from.
var Presets = map[string]Preset{
	// A mobile plan: pay an hour at a time, a day ahead.
	"mobile": {Increment: time.Hour, Buffer: 24 * time.Hour},
	// Insurance: pay a day at a time, a day ahead.
	"insurance": {Increment: 24 * time.Hour, Buffer: 24 * time.Hour},
	// Bike rental: pay a minute at a time, 15 minutes ahead.
	"bike": {Increment: time.Minute, Buffer: 15 * time.Minute},
}

// PresetNames lists the presets for error messages and docs.
func PresetNames() string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// TermsRequest is what a payer may choose when subscribing or changing a
// subscription; nil fields take defaults (on add) or stay (on change).
type TermsRequest struct {
	Preset      string
	Increment   *time.Duration
	Buffer      *time.Duration
	MaxPerDay   *lnwire.MilliSatoshi
	MaxTotal    *lnwire.MilliSatoshi
	MaxPrice    *lnwire.MilliSatoshi
	FeeLimitPPM *uint32
	FeeLimit    *lnwire.MilliSatoshi
}

// Terms are a payer's own terms for one subscription, checked against the
// offer by ResolveTerms.
type Terms struct {
	// Increment is the service time each payment buys (whole seconds).
	Increment time.Duration
	// Buffer is how far ahead of now the subscription is kept paid.
	Buffer time.Duration
	// MaxPerDay caps spend (amounts and fees) per UTC day; 0 means none.
	MaxPerDay lnwire.MilliSatoshi
	// MaxTotal caps spend (amounts and fees) overall; 0 means none.
	MaxTotal lnwire.MilliSatoshi
	// MaxPrice is the highest price per second the payer accepts.
	MaxPrice lnwire.MilliSatoshi
	// FeeLimitPPM and FeeLimit both bound each payment's routing fee.
	FeeLimitPPM uint32
	FeeLimit    lnwire.MilliSatoshi
}

// PaymentAmount is what one payment of increment costs at price, rounded
// up to whole sat because lnd's keysend takes a sat amount (the receiver
// carries the msat remainder, so the extra is not lost).
func PaymentAmount(price lnwire.MilliSatoshi,
	increment time.Duration) lnwire.MilliSatoshi {

	secs := uint64(increment / time.Second)
	hi, lo := bits.Mul64(uint64(price), secs)
	if hi != 0 {
		return lnwire.MilliSatoshi(^uint64(0) / 1000 * 1000)
	}
	sats := (lo + 999) / 1000
	return lnwire.MilliSatoshi(sats * 1000)
}

// MaxFee is the routing fee limit of a payment of amt: the lower of the
// proportional and the absolute limit.
func MaxFee(amt lnwire.MilliSatoshi, ppm uint32,
	abs lnwire.MilliSatoshi) lnwire.MilliSatoshi {

	hi, lo := bits.Mul64(uint64(amt), uint64(ppm))
	prop := lnwire.MilliSatoshi(^uint64(0))
	if hi == 0 {
		prop = lnwire.MilliSatoshi(lo / 1_000_000)
	}
	if abs < prop {
		return abs
	}
	return prop
}

// timeBought is the service time a payment of amt buys at price, ignoring
// the carried remainder (an estimate for scheduling only).
func timeBought(amt, price lnwire.MilliSatoshi) time.Duration {
	if price == 0 {
		return 0
	}
	secs := uint64(amt / price)
	if secs > uint64(1<<62)/uint64(time.Second) {
		return time.Duration(1 << 62)
	}
	return time.Duration(secs) * time.Second
}

// ResolveTerms fills the payer's request with defaults for the offer and
// checks the result, returning an error wrapping ErrBadTerms that names the
// field. base, when not nil, holds the current terms of a subscription being
// changed; fields missing from req keep their value from base.
func ResolveTerms(o *tlv.Offer, req TermsRequest, base *Terms) (*Terms, error) {
	t := Terms{}
	explicitIncrement := req.Increment != nil
	explicitBuffer := req.Buffer != nil
	preset, hasPreset := Presets[req.Preset]
	if req.Preset != "" && !hasPreset {
		return nil, fmt.Errorf("%w: preset %q is unknown (known: %s)",
			ErrBadTerms, req.Preset, PresetNames())
	}

	if base != nil {
		t = *base
	} else {
		t.Increment = o.DefaultIncrement
		if hasPreset {
			t.Increment = preset.Increment
		}
		t.MaxPrice = o.PriceMsatPerSec
		t.FeeLimitPPM = DefaultFeeLimitPPM
		t.FeeLimit = DefaultFeeLimit
	}
	if explicitIncrement {
		t.Increment = *req.Increment
	}
	if req.MaxPrice != nil {
		t.MaxPrice = *req.MaxPrice
	}
	if req.FeeLimitPPM != nil {
		t.FeeLimitPPM = *req.FeeLimitPPM
	}
	if req.FeeLimit != nil {
		t.FeeLimit = *req.FeeLimit
	}
	if req.MaxPerDay != nil {
		t.MaxPerDay = *req.MaxPerDay
	}
	if req.MaxTotal != nil {
		t.MaxTotal = *req.MaxTotal
	}

	price := o.PriceMsatPerSec
	switch {
	case t.MaxPrice == 0:
		return nil, fmt.Errorf("%w: max_price_msat_per_sec must be "+
			"positive", ErrBadTerms)
	case price > t.MaxPrice:
		return nil, fmt.Errorf("%w: the offer's price %d msat/s is "+
			"above max_price_msat_per_sec %d", ErrBadTerms, price,
			t.MaxPrice)
	case t.Increment <= 0 || t.Increment%time.Second != 0:
		return nil, fmt.Errorf("%w: increment %v must be a positive "+
			"number of whole seconds", ErrBadTerms, t.Increment)
	case t.Increment > o.MaxPrepay:
		if explicitIncrement {
			return nil, fmt.Errorf("%w: increment %v is above the "+
				"offer's max prepayment %v", ErrBadTerms,
				t.Increment, o.MaxPrepay)
		}
		t.Increment = o.MaxPrepay
	}

	// By default avoid payments the fees would eat, and never go below
	// what the receiver credits.
	if !explicitIncrement && base == nil {
		floor := MinDefaultPayment
		if o.MinPayment > floor {
			floor = o.MinPayment
		}
		if PaymentAmount(price, t.Increment) < floor {
			secs := (uint64(floor) + uint64(price) - 1) /
				uint64(price)
			inc := time.Duration(secs) * time.Second
			if inc > o.MaxPrepay {
				inc = o.MaxPrepay
			}
			t.Increment = inc
		}
	}
	amt := PaymentAmount(price, t.Increment)
	if amt < o.MinPayment {
		return nil, fmt.Errorf("%w: a payment for increment %v is %v, "+
			"below the offer's minimum payment %v", ErrBadTerms,
			t.Increment, amt, o.MinPayment)
	}
	perPayment := timeBought(amt, price)

	switch {
	case explicitBuffer:
		t.Buffer = *req.Buffer
	case base == nil && hasPreset:
		t.Buffer = preset.Buffer
	case base == nil:
		t.Buffer = t.Increment
	}
	if t.Buffer < 0 {
		return nil, fmt.Errorf("%w: buffer %v must not be negative",
			ErrBadTerms, t.Buffer)
	}
	if t.Buffer+perPayment > o.MaxPrepay {
		if explicitBuffer {
			return nil, fmt.Errorf("%w: buffer %v plus the %v one "+
				"payment buys exceeds the offer's max "+
				"prepayment %v", ErrBadTerms, t.Buffer,
				perPayment, o.MaxPrepay)
		}
		// Keep a margin for the latency between our estimate and the
		// receiver's clock.
		margin := o.MaxPrepay / 10
		if margin > time.Minute {
			margin = time.Minute
		}
		t.Buffer = o.MaxPrepay - perPayment - margin
		if t.Buffer < 0 {
			t.Buffer = 0
		}
		t.Buffer = t.Buffer.Truncate(time.Second)
	}

	if t.FeeLimitPPM == 0 || t.FeeLimit == 0 {
		return nil, fmt.Errorf("%w: fee_limit_ppm (%d) and "+
			"fee_limit_msat (%d) must be positive: a zero fee limit "+
			"finds no route", ErrBadTerms, t.FeeLimitPPM, t.FeeLimit)
	}
	if MaxFee(amt, t.FeeLimitPPM, t.FeeLimit) == 0 {
		return nil, fmt.Errorf("%w: fee_limit_ppm %d of a %v payment "+
			"is under 1 msat; raise it", ErrBadTerms, t.FeeLimitPPM,
			amt)
	}

	if base == nil && req.MaxPerDay == nil {
		t.MaxPerDay = defaultDailyCap(amt, perPayment, t)
	}
	perPay := amt + MaxFee(amt, t.FeeLimitPPM, t.FeeLimit)
	if t.MaxPerDay != 0 && t.MaxPerDay < perPay {
		return nil, fmt.Errorf("%w: max_per_day_msat %d is below one "+
			"payment with its fee limit (%d)", ErrBadTerms,
			t.MaxPerDay, perPay)
	}
	if t.MaxTotal != 0 && t.MaxTotal < perPay {
		return nil, fmt.Errorf("%w: max_total_msat %d is below one "+
			"payment with its fee limit (%d)", ErrBadTerms,
			t.MaxTotal, perPay)
	}

	return &t, nil
}

// defaultDailyCap allows what a normal day needs: the payments for 24 hours
// of service plus filling the buffer once, each with its fee limit.
func defaultDailyCap(amt lnwire.MilliSatoshi, perPayment time.Duration,
	t Terms) lnwire.MilliSatoshi {

	if perPayment <= 0 {
		return 0
	}
	need := 24*time.Hour + t.Buffer
	n := uint64(need/perPayment) + 2
	perPay := uint64(amt + MaxFee(amt, t.FeeLimitPPM, t.FeeLimit))
	hi, lo := bits.Mul64(n, perPay)
	if hi != 0 {
		return 0
	}
	return lnwire.MilliSatoshi(lo)
}
