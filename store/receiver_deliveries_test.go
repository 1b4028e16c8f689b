package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRemovedEndpointRowsFoundAndDeleted: the endpoints that have rows are
// listed one seek each (an endpoint id of all 0xff included), and one
// endpoint's rows are deleted in bounded steps without touching another's.
func TestRemovedEndpointRowsFoundAndDeleted(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	r := db.Receiver()
	ctx := context.Background()
	a, b := NewEndpointID("https://a.example"), EndpointID{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	require.NoError(t, r.Update(ctx, func(tx ReceiverTx) error {
		for id := EventID(1); id <= 5; id++ {
			for _, ep := range []EndpointID{a, b} {
				err := tx.PutDelivery(&Delivery{Endpoint: ep,
					Event: id, State: DeliveryDelivered})
				if err != nil {
					return err
				}
			}
		}
		return nil
	}))
	var eps []EndpointID
	require.NoError(t, r.View(ctx, func(tx ReceiverTx) error {
		var err error
		eps, err = tx.DeliveryEndpoints()
		return err
	}))
	require.ElementsMatch(t, []EndpointID{a, b}, eps)

	for _, want := range []int{3, 2, 0} {
		require.NoError(t, r.Update(ctx, func(tx ReceiverTx) error {
			n, err := tx.DeleteDeliveries(b, 3)
			require.Equal(t, want, n)
			return err
		}))
	}
	require.NoError(t, r.View(ctx, func(tx ReceiverTx) error {
		eps, err := tx.DeliveryEndpoints()
		require.Equal(t, []EndpointID{a}, eps)
		dl, err2 := tx.Delivery(a, 5)
		require.NoError(t, err2)
		require.Equal(t, DeliveryDelivered, dl.State)
		return err
	}))
}

// TestDeliveryRowsReadAcrossEndpoints: one endpoint's rows are read after
// a cursor, in event order, with their ids, and never another endpoint's
// (the next endpoint id's rows follow in the key space).
func TestDeliveryRowsReadAcrossEndpoints(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	r := db.Receiver()
	ctx := context.Background()
	a := EndpointID{0, 0, 0, 0, 0, 0, 0, 1}
	next := EndpointID{0, 0, 0, 0, 0, 0, 0, 2}
	require.NoError(t, r.Update(ctx, func(tx ReceiverTx) error {
		for id := EventID(1); id <= 4; id++ {
			for _, ep := range []EndpointID{a, next} {
				err := tx.PutDelivery(&Delivery{Endpoint: ep,
					Event: id, State: DeliveryDead, Attempts: 7})
				if err != nil {
					return err
				}
			}
		}
		return nil
	}))
	for _, c := range []struct {
		name  string
		after EventID
		want  []EventID
	}{
		{"from the start", 0, []EventID{1, 2, 3, 4}},
		{"after a cursor", 2, []EventID{3, 4}},
		{"past the end", 4, nil},
		{"largest cursor", ^EventID(0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []EventID
			require.NoError(t, r.View(ctx, func(tx ReceiverTx) error {
				got = nil
				return tx.ForEachDelivery(a, c.after,
					func(d *Delivery) error {
						require.Equal(t, a, d.Endpoint)
						require.Equal(t, DeliveryDead, d.State)
						require.EqualValues(t, 7, d.Attempts)
						got = append(got, d.Event)
						return nil
					})
			}))
			require.Equal(t, c.want, got)
		})
	}
}
