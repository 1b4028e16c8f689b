package store

import (
	"encoding/binary"
	"time"
)

// Key layout. Every key starts with one prefix byte naming its table;
// integers in keys are big-endian and fixed-width so byte order is numeric
// order and prefix scans are range scans. The prefix values are on disk and
// never change.
const (
	// pMeta holds singletons: schema version, lnd stream indices, counters.
	pMeta byte = 0x01

	// Receiver tables.
	pPlan        byte = 0x10 // | plan id bytes            -> Plan
	pRSub        byte = 0x11 // | sub(16)                  -> ReceiverSubscription
	pRSubByState byte = 0x12 // | state(1) | sub(16)       -> empty
	pRSubByPaid  byte = 0x13 // | dueAt(8) | sub(16)       -> empty (watched states; see dueAt)
	pPayment     byte = 0x14 // | hash(32)                 -> Payment
	pPaymentBySq byte = 0x15 // | sub(16) | seq(8) | hash  -> empty
	pEvent       byte = 0x16 // | id(8)                    -> Event
	pEventQueue  byte = 0x17 // | id(8)                    -> empty (not delivered)
	// pRSubByPublic | public id(16) -> sub(16): finds a subscription by
	// the public id APIs use (0x18..0x1a are in receiver_held.go and
	// receiver_refusals.go).
	pRSubByPublic byte = 0x1b

	// Sender tables.
	pSSub        byte = 0x20 // | sub(16)                  -> SenderSubscription
	pSSubByState byte = 0x21 // | state(1) | sub(16)       -> empty
	pAttempt     byte = 0x22 // | sub(16) | seq(8)         -> Attempt
	pAttemptHash byte = 0x23 // | hash(32)                 -> sub(16) | seq(8)
	pAttemptOpen byte = 0x24 // | sub(16) | seq(8)         -> empty (non-final)
	pSpend       byte = 0x25 // | sub(16) | day(4)         -> counter
)

// Meta singletons.
var (
	keySchemaVersion = []byte{pMeta, 0x01}
	keySettleIndex   = []byte{pMeta, 0x10}
	keyAddIndex      = []byte{pMeta, 0x11}
	keyLastEventID   = []byte{pMeta, 0x12}
)

// key concatenates a prefix and parts into a fresh slice.
func key(prefix byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	k = append(k, prefix)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func be32(v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b[:]
}

// timeKey orders times in keys: Unix nanoseconds, clamped at zero so the
// zero time (never paid) sorts first.
func timeKey(t time.Time) []byte {
	if t.IsZero() || t.UnixNano() < 0 {
		return be64(0)
	}
	return be64(uint64(t.UnixNano()))
}

func planKey(id PlanID) []byte        { return key(pPlan, []byte(id)) }
func rsubKey(id SubID) []byte         { return key(pRSub, id[:]) }
func rsubPublicKey(p [16]byte) []byte { return key(pRSubByPublic, p[:]) }
func paymentKey(h Hash) []byte        { return key(pPayment, h[:]) }
func eventKey(id EventID) []byte      { return key(pEvent, be64(uint64(id))) }
func eventQueueKey(id EventID) []byte { return key(pEventQueue, be64(uint64(id))) }
func ssubKey(id SubID) []byte         { return key(pSSub, id[:]) }
func attemptHashKey(h Hash) []byte    { return key(pAttemptHash, h[:]) }

func rsubStateKey(s SubState, id SubID) []byte {
	return key(pRSubByState, []byte{byte(s)}, id[:])
}

func rsubPaidKey(t time.Time, id SubID) []byte {
	return key(pRSubByPaid, timeKey(t), id[:])
}

func paymentSeqKey(id SubID, seq uint64, h Hash) []byte {
	return key(pPaymentBySq, id[:], be64(seq), h[:])
}

func ssubStateKey(s SenderState, id SubID) []byte {
	return key(pSSubByState, []byte{byte(s)}, id[:])
}

func attemptKey(id SubID, seq uint64) []byte {
	return key(pAttempt, id[:], be64(seq))
}

func attemptOpenKey(id SubID, seq uint64) []byte {
	return key(pAttemptOpen, id[:], be64(seq))
}

func spendKey(id SubID, d Day) []byte {
	return key(pSpend, id[:], be32(uint32(d)))
}

func beU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
