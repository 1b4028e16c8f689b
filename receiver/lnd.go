package receiver

import (
	"context"
	"fmt"
	"strings"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lndSource adapts lndclient to core.InvoiceSource.
type lndSource struct {
	lnd *lndclient.LndServices
}

var _ core.InvoiceSource = (*lndSource)(nil)

// fromClient converts an lndclient invoice. Amount is what the invoice's
// HTLCs that are not cancelled carry together: lnd adds a later HTLC with
// the same hash to an accepted keysend invoice (no update is sent for it)
// and SettleInvoice settles them all, so a decision is on the sum. The
// custom records and accept time are the earliest HTLC's (lnd lists HTLCs
// in no particular order).
func fromClient(inv *lndclient.Invoice) *core.Invoice {
	out := &core.Invoice{
		Hash:        inv.Hash,
		Preimage:    inv.Preimage,
		State:       inv.State,
		IsKeysend:   inv.IsKeysend,
		Amount:      inv.AmountPaid,
		AddIndex:    inv.AddIndex,
		SettleIndex: inv.SettleIndex,
	}
	var sum lnwire.MilliSatoshi
	for _, h := range inv.Htlcs {
		if h.State == lnrpc.InvoiceHTLCState_CANCELED {
			continue
		}
		sum += h.Amount
		out.HTLCs++
		if out.HTLCs == 1 || h.AcceptTime.Before(out.AcceptTime) {
			out.Custom = h.CustomRecords
			out.AcceptTime = h.AcceptTime
		}
	}
	if out.HTLCs > 0 {
		out.Amount = sum
	}
	return out
}

// invoiceErr translates lnd's "no such invoice" answers to
// core.ErrInvoiceNotFound: LookupInvoice's gRPC NotFound, and the plain
// error SettleInvoice and CancelInvoice pass on from the invoice registry
// (invoices.ErrInvoiceNotFound, which reaches us as text only).
func invoiceErr(err error) error {
	if err == nil {
		return nil
	}
	if status.Code(err) == codes.NotFound || strings.Contains(err.Error(),
		invoices.ErrInvoiceNotFound.Error()) {

		return fmt.Errorf("%w: %v", core.ErrInvoiceNotFound, err)
	}
	return err
}

// fromRPC converts a raw lnrpc invoice (used where lndclient offers no
// wrapper, e.g. listing only pending invoices).
func fromRPC(inv *lnrpc.Invoice) (*core.Invoice, error) {
	hash, err := lntypes.MakeHash(inv.RHash)
	if err != nil {
		return nil, fmt.Errorf("invoice hash: %w", err)
	}
	out := &core.Invoice{
		Hash:        hash,
		IsKeysend:   inv.IsKeysend,
		Amount:      lnwire.MilliSatoshi(inv.AmtPaidMsat),
		AddIndex:    inv.AddIndex,
		SettleIndex: inv.SettleIndex,
	}
	switch inv.State {
	case lnrpc.Invoice_OPEN:
		out.State = invoices.ContractOpen
	case lnrpc.Invoice_ACCEPTED:
		out.State = invoices.ContractAccepted
	case lnrpc.Invoice_SETTLED:
		out.State = invoices.ContractSettled
	case lnrpc.Invoice_CANCELED:
		out.State = invoices.ContractCanceled
	}
	return out, nil
}

// SubscribeInvoices implements core.InvoiceSource.
func (s *lndSource) SubscribeInvoices(ctx context.Context, addIndex,
	settleIndex uint64) (<-chan *core.Invoice, <-chan error, error) {

	in, errs, err := s.lnd.Client.SubscribeInvoices(ctx,
		lndclient.InvoiceSubscriptionRequest{
			AddIndex: addIndex, SettleIndex: settleIndex,
		})
	if err != nil {
		return nil, nil, err
	}
	return mapChan(ctx, in, fromClient, streamBuffer), errs, nil
}

// SubscribeSingleInvoice implements core.InvoiceSource.
func (s *lndSource) SubscribeSingleInvoice(ctx context.Context,
	hash lntypes.Hash) (<-chan *core.Invoice, <-chan error, error) {

	in, errs, err := s.lnd.Invoices.SubscribeSingleInvoice(ctx, hash)
	if err != nil {
		return nil, nil, err
	}
	return mapChan(ctx, in, func(u lndclient.InvoiceUpdate) *core.Invoice {
		return fromClient(&u.Invoice)
	}, 0), errs, nil
}

// streamBuffer lets the invoice stream's events queue up on our side while
// the pipeline waits for the fsync of the last batch, so the next batch
// holds them all (lndclient's own channel is unbuffered: without a buffer
// here, batches stay one event long against a real lnd). Events buffered
// but not recorded are replayed after a restart: the stored indexes only
// move when a batch is recorded.
const streamBuffer = 256

// mapChan forwards lndclient's updates as core invoices until in closes or
// ctx ends, never blocking past ctx (lndclient's channels are not closed
// when ctx ends).
func mapChan[T any](ctx context.Context, in <-chan T,
	conv func(T) *core.Invoice, buffer int) <-chan *core.Invoice {

	out := make(chan *core.Invoice, buffer)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case v, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- conv(v):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// LookupInvoice implements core.InvoiceSource.
func (s *lndSource) LookupInvoice(ctx context.Context,
	hash lntypes.Hash) (*core.Invoice, error) {

	inv, err := s.lnd.Client.LookupInvoice(ctx, hash)
	if err != nil {
		return nil, invoiceErr(err)
	}
	return fromClient(inv), nil
}

// ListPendingInvoices implements core.InvoiceSource.
func (s *lndSource) ListPendingInvoices(ctx context.Context) ([]*core.Invoice, error) {
	var (
		out    []*core.Invoice
		offset uint64
	)
	for {
		rctx, timeout, raw := s.lnd.Client.RawClientWithMacAuth(ctx)
		rctx, cancel := context.WithTimeout(rctx, timeout)
		resp, err := raw.ListInvoices(rctx, &lnrpc.ListInvoiceRequest{
			PendingOnly:    true,
			IndexOffset:    offset,
			NumMaxInvoices: 500,
		})
		cancel()
		if err != nil {
			return nil, err
		}
		for _, inv := range resp.Invoices {
			ci, err := fromRPC(inv)
			if err != nil {
				return nil, err
			}
			out = append(out, ci)
		}
		if len(resp.Invoices) == 0 || resp.LastIndexOffset <= offset {
			return out, nil
		}
		offset = resp.LastIndexOffset
	}
}

// SettleInvoice implements core.InvoiceSource.
func (s *lndSource) SettleInvoice(ctx context.Context, pre lntypes.Preimage) error {
	return invoiceErr(s.lnd.Invoices.SettleInvoice(ctx, pre))
}

// CancelInvoice implements core.InvoiceSource.
func (s *lndSource) CancelInvoice(ctx context.Context, hash lntypes.Hash) error {
	return invoiceErr(s.lnd.Invoices.CancelInvoice(ctx, hash))
}
