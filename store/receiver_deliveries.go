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
// given up. The prefix value is on disk and never changes.
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
	// RetrySince restarts the give-up clock after a manual retry (zero:
	// the event's creation time).
	RetrySince time.Time
}

func (d *Delivery) records() []tlv.Record {
	return []tlv.Record{
		recU8(1, (*uint8)(&d.State)),
		recU32(2, &d.Attempts),
		recTime(3, &d.NextAttempt),
		recString(4, &d.LastError),
		recTime(5, &d.FinishedAt),
		recTime(6, &d.RetrySince),
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
