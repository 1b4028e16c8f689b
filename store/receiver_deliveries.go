package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lightningnetwork/lnd/tlv"
)

// Webhook deliveries are tracked per endpoint, so one endpoint that is
// down never holds back the others: each (endpoint, event) pair has its own
// attempts, next attempt and final state. An event leaves the pending queue
// (Event.Delivered) once every configured endpoint has it delivered or
// given up; its rows are then deleted except the dead ones (the dead-letter
// record a manual retry starts from), and the rows of an endpoint no longer
// configured are deleted at the next start. The prefix value is on disk
// and never changes.
const (
	// pDelivery | endpoint(8) | event id(8) -> Delivery.
	pDelivery byte = 0x32
)

// EndpointID names a webhook endpoint in the ledger: the first 8 bytes of
// the SHA-256 of its URL, so the URL itself (which may hold a token) is
// not stored.
type EndpointID [8]byte

// NewEndpointID returns the id of a webhook URL.
func NewEndpointID(url string) EndpointID {
	h := sha256.Sum256([]byte(url))
	var id EndpointID
	copy(id[:], h[:8])
	return id
}

// String renders the id as the API shows it.
func (e EndpointID) String() string { return "we_" + hex.EncodeToString(e[:]) }

// DeliveryState is the state of one event at one endpoint. The values are
// on disk and never change.
type DeliveryState uint8

const (
	// DeliveryPending is waiting for its first or next attempt (also
	// the state of a pair with no record yet).
	DeliveryPending DeliveryState = 0
	// DeliveryDelivered got a 2xx.
	DeliveryDelivered DeliveryState = 1
	// DeliveryDead was given up after the retry period (the dead-letter
	// state); a manual retry makes it pending again.
	DeliveryDead DeliveryState = 2
)

// String names the state as the API shows it.
func (s DeliveryState) String() string {
	switch s {
	case DeliveryPending:
		return "pending"
	case DeliveryDelivered:
		return "delivered"
	case DeliveryDead:
		return "dead"
	}
	return fmt.Sprintf("unknown(%d)", uint8(s))
}

// Delivery is one event's delivery state at one endpoint.
type Delivery struct {
	Endpoint    EndpointID
	Event       EventID
	State       DeliveryState
	Attempts    uint32
	NextAttempt time.Time
	LastError   string
	// FinishedAt is when it was delivered or given up.
	FinishedAt time.Time
	// RetrySince is when the give-up clock started: the first failed
	// attempt at this endpoint, or the last manual retry (zero: not
	// attempted yet, or attempted before the clock was kept, which
	// counts from the event's creation).
	RetrySince time.Time
	// Manual marks a row made pending by a manual retry until it
	// finishes again: it does not hold back later events of its
	// subscription, which went on when it was given up.
	Manual bool
}

func (d *Delivery) records() []tlv.Record {
	return []tlv.Record{
		recU8(1, (*uint8)(&d.State)),
		recU32(2, &d.Attempts),
		recTime(3, &d.NextAttempt),
		recString(4, &d.LastError),
		recTime(5, &d.FinishedAt),
		recTime(6, &d.RetrySince),
		recBool(7, &d.Manual),
	}
}

func deliveryKey(ep EndpointID, id EventID) []byte {
	return key(pDelivery, ep[:], be64(uint64(id)))
}

// Delivery returns the state of event id at endpoint ep; a pair never
// attempted is a fresh pending Delivery.
func (t *receiverTx) Delivery(ep EndpointID, id EventID) (*Delivery, error) {
	d := &Delivery{}
	err := t.get(deliveryKey(ep, id), d)
	switch {
	case errors.Is(err, ErrNotFound):
		d = &Delivery{}
	case err != nil:
		return nil, err
	}
	d.Endpoint, d.Event = ep, id
	return d, nil
}

// PutDelivery stores d.
func (t *receiverTx) PutDelivery(d *Delivery) error {
	return t.put(deliveryKey(d.Endpoint, d.Event), d)
}

// DeleteDelivery removes the row of event id at endpoint ep (nothing if
// there is none); the pair then reads as never attempted.
func (t *receiverTx) DeleteDelivery(ep EndpointID, id EventID) error {
	return t.del(deliveryKey(ep, id))
}

// DeleteDeliveries removes up to max rows of endpoint ep, oldest event
// first, and reports how many it removed: an endpoint dropped from the
// config leaves its rows behind, to be deleted in steps that fit a
// transaction.
func (t *receiverTx) DeleteDeliveries(ep EndpointID, max int) (int, error) {
	var keys [][]byte
	err := t.scan(key(pDelivery, ep[:]), nil, false,
		func(k []byte, _ *badger.Item) error {
			keys = append(keys, append([]byte(nil), k...))
			if len(keys) >= max {
				return ErrStop
			}
			return nil
		})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := t.del(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// DeliveryEndpoints lists every endpoint that has delivery rows, in id
// order. It seeks from one endpoint's rows to the next, so it costs one
// seek per endpoint, not one step per row.
func (t *receiverTx) DeliveryEndpoints() ([]EndpointID, error) {
	var (
		out   []EndpointID
		start = []byte{pDelivery}
	)
	for {
		var (
			ep    EndpointID
			found bool
		)
		err := t.scan([]byte{pDelivery}, start, false,
			func(k []byte, _ *badger.Item) error {
				if len(k) != 1+len(ep)+8 {
					return fmt.Errorf("%w: delivery key of %d "+
						"bytes", ErrCorrupt, len(k))
				}
				copy(ep[:], k[1:])
				found = true
				return ErrStop
			})
		if err != nil || !found {
			return out, err
		}
		out = append(out, ep)
		next, ok := nextEndpointID(ep)
		if !ok {
			return out, nil
		}
		start = key(pDelivery, next[:])
	}
}

// ForEachDelivery calls fn for every row of endpoint ep with an event id
// greater than after, in event id order. The rows left are pending or dead
// (a finished event's delivered rows are deleted), so this is how the dead
// letters are found without reading every event.
func (t *receiverTx) ForEachDelivery(ep EndpointID, after EventID,
	fn func(*Delivery) error) error {

	if uint64(after) == ^uint64(0) {
		return nil
	}
	return t.scan(key(pDelivery, ep[:]), deliveryKey(ep, after+1), true,
		func(k []byte, item *badger.Item) error {
			if len(k) != 1+len(ep)+8 {
				return fmt.Errorf("%w: delivery key of %d bytes",
					ErrCorrupt, len(k))
			}
			d := &Delivery{}
			err := item.Value(func(v []byte) error {
				return decodeRecord(v, d)
			})
			if err != nil {
				return err
			}
			d.Endpoint, d.Event = ep, EventID(beU64(k[1+len(ep):]))
			return fn(d)
		})
}

// nextEndpointID is ep plus one as a big-endian number (false after the
// last id).
func nextEndpointID(ep EndpointID) (EndpointID, bool) {
	for i := len(ep) - 1; i >= 0; i-- {
		ep[i]++
		if ep[i] != 0 {
			return ep, true
		}
	}
	return ep, false
}

// EventByUID returns the event with that public id, or ErrNotFound. It
// scans the events: it serves a provider's manual retry, not a hot path.
func (t *receiverTx) EventByUID(uid EventUID) (*Event, error) {
	var found *Event
	err := t.scan([]byte{pEvent}, nil, true,
		func(_ []byte, item *badger.Item) error {
			ev := &Event{}
			err := item.Value(func(v []byte) error {
				return decodeRecord(v, ev)
			})
			if err != nil {
				return err
			}
			if ev.UID == uid {
				found = ev
				return ErrStop
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("event %s: %w", uid, ErrNotFound)
	}
	return found, nil
}
