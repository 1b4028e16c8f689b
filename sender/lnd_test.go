package sender

import (
	"errors"
	"fmt"
	"testing"

	paymentsdb "github.com/lightningnetwork/lnd/payments/db"
	"github.com/stretchr/testify/require"
)

// TestRouterAnswersRecognised checks that the sender recognises the two
// router answers as lndclient returns them (lnd's payments/db values,
// possibly wrapped) and nothing else: a miss would send a hash lnd already
// has, or never send one it never saw.
func TestRouterAnswersRecognised(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		hasPay   bool
		neverSaw bool
	}{
		{"already paid", paymentsdb.ErrAlreadyPaid, true, false},
		{"not initiated", paymentsdb.ErrPaymentNotInitiated, false,
			true},
		{"wrapped", fmt.Errorf("track: %w",
			paymentsdb.ErrPaymentNotInitiated), false, true},
		{"same text, other error", errors.New("payment isn't " +
			"initiated"), false, false},
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
