package sender

import (
	"errors"
	"fmt"
	"testing"

	paymentsdb "github.com/lightningnetwork/lnd/payments/db"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/stretchr/testify/require"
)

// TestRouterAnswersMatchLnd pins the text by which the sender recognises
// lnd's two router answers (the daemon does not import lnd's payments/db
// for them; a test may, it is not linked into the binary) and checks that
// the fake router gives the same answers.
func TestRouterAnswersMatchLnd(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		hasPay   bool
		neverSaw bool
	}{
		{"lnd already paid", paymentsdb.ErrAlreadyPaid, true, false},
		{"lnd not initiated", paymentsdb.ErrPaymentNotInitiated, false,
			true},
		{"fake already paid", sendertest.ErrAlreadyPaid, true, false},
		{"fake not initiated", sendertest.ErrPaymentNotInitiated, false,
			true},
		{"wrapped", fmt.Errorf("track: %w",
			paymentsdb.ErrPaymentNotInitiated), false, true},
		{"other error", errors.New("rpc error: code = Unavailable"),
			false, false},
		{"no error", nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.hasPay, lndHasPayment(tc.err))
			require.Equal(t, tc.neverSaw, lndNeverSaw(tc.err))
		})
	}
}
