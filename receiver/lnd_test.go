package receiver

import (
	"errors"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFromClientDecidesOnAllAcceptedHTLCs: lnd adds a later HTLC with the
// same hash to an accepted keysend invoice and SettleInvoice settles them
// all, so the amount is the sum of the HTLCs that are not cancelled, and
// the records are the earliest HTLC's whatever order lnd lists them in.
func TestFromClientDecidesOnAllAcceptedHTLCs(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	first := map[uint64][]byte{65537: {1}}
	later := map[uint64][]byte{65537: {2}}
	tests := []struct {
		name   string
		htlcs  []lndclient.InvoiceHtlc
		paid   lnwire.MilliSatoshi
		amount lnwire.MilliSatoshi
		count  int
		custom map[uint64][]byte
	}{{
		name: "one HTLC",
		htlcs: []lndclient.InvoiceHtlc{{Amount: 2000, AcceptTime: t0,
			State: lnrpc.InvoiceHTLCState_ACCEPTED, CustomRecords: first}},
		amount: 2000, count: 1, custom: first,
	}, {
		name: "second HTLC listed first",
		htlcs: []lndclient.InvoiceHtlc{{
			Amount: 1000, AcceptTime: t0.Add(time.Second),
			State:         lnrpc.InvoiceHTLCState_ACCEPTED,
			CustomRecords: later,
		}, {
			Amount: 2000, AcceptTime: t0,
			State:         lnrpc.InvoiceHTLCState_ACCEPTED,
			CustomRecords: first,
		}},
		amount: 3000, count: 2, custom: first,
	}, {
		name: "cancelled HTLC left out",
		htlcs: []lndclient.InvoiceHtlc{{
			Amount: 5000, AcceptTime: t0.Add(-time.Second),
			State:         lnrpc.InvoiceHTLCState_CANCELED,
			CustomRecords: later,
		}, {
			Amount: 2000, AcceptTime: t0,
			State:         lnrpc.InvoiceHTLCState_SETTLED,
			CustomRecords: first,
		}},
		amount: 2000, count: 1, custom: first,
	}, {
		name: "no HTLC details",
		paid: 700, amount: 700,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := fromClient(&lndclient.Invoice{
				State: invoices.ContractAccepted, IsKeysend: true,
				AmountPaid: tc.paid, Htlcs: tc.htlcs,
			})
			require.Equal(t, tc.amount, inv.Amount)
			require.Equal(t, tc.count, inv.HTLCs)
			require.Equal(t, tc.custom, inv.Custom)
		})
	}
}

// TestInvoiceErrTranslatesNotFound: lnd answers "no such invoice" as gRPC
// NotFound (LookupInvoice) or as the registry's plain error text
// (SettleInvoice, CancelInvoice); both mean cancelled to the pipeline.
func TestInvoiceErrTranslatesNotFound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		notFound bool
	}{
		{"nil", nil, false},
		{"grpc not found", status.Error(codes.NotFound,
			"unable to locate invoice"), true},
		{"registry text", status.Error(codes.Unknown,
			invoices.ErrInvoiceNotFound.Error()), true},
		{"already canceled", status.Error(codes.Unknown,
			invoices.ErrInvoiceAlreadyCanceled.Error()), false},
		{"timeout", status.Error(codes.DeadlineExceeded, "timeout"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := invoiceErr(tc.err)
			require.Equal(t, tc.notFound,
				errors.Is(err, core.ErrInvoiceNotFound))
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}
