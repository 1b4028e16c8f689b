// Package idem implements the Idempotency-Key header of both satstream APIs
// with Stripe's semantics: a POST sent again with the same key and the same
// body gets the first response (status and body, byte for byte) without
// being executed again; the same key with a different body is a 409. Keys
// are scoped to the credential and the request path, kept in the daemon's
// ledger (so they survive a restart) for a time to live, and bounded in
// number.
package idem

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
)

// Header is the request header that carries the client's key.
const Header = "Idempotency-Key"

// ReplayedHeader is set to "true" on a response replayed from a stored
// result, as Stripe does.
const ReplayedHeader = "Idempotent-Replayed"

const (
	// DefaultTTL is how long a key is remembered (Stripe: 24 hours).
	DefaultTTL = 24 * time.Hour

	// DefaultMaxKeys caps the keys remembered at once; beyond it new
	// keys are refused (HTTP 429) until old ones expire, except on the
	// requests that stop something (WrapStop).
	DefaultMaxKeys = 100_000

	// DefaultStopReserve is how many keys beyond MaxKeys the requests
	// that stop something may still record.
	DefaultStopReserve = DefaultMaxKeys / 10

	// MaxKeyLen bounds a key (Stripe: 255 characters).
	MaxKeyLen = 255

	// maxBody bounds the request bodies hashed and the responses kept.
	maxBody = 1 << 20
)

// Store keeps the records durably: *store.DB.
type Store interface {
	IdemBegin(ctx context.Context, rec *store.IdemRecord, ttl time.Duration,
		maxRecords uint64) (*store.IdemRecord, bool, error)
	IdemFinish(ctx context.Context, rec *store.IdemRecord,
		now time.Time) error
}

var _ Store = (*store.DB)(nil)

// Logger is the part of a btclog.Logger the keeper logs with.
type Logger interface {
	Warnf(format string, params ...any)
	Errorf(format string, params ...any)
}

// Keeper wraps POST handlers with Idempotency-Key handling.
type Keeper struct {
	db  Store
	log Logger

	// TTL and MaxKeys bound the stored keys (defaults above);
	// StopReserve is the room beyond MaxKeys kept for WrapStop.
	TTL         time.Duration
	MaxKeys     uint64
	StopReserve uint64

	// Now is the clock (time.Now).
	Now func() time.Time

	mu    sync.Mutex
	locks map[[32]byte]*keyLock
}

// keyLock serialises the requests that share one key inside this process,
// so two identical requests sent at once execute once: the second waits
// and then replays the first's result.
type keyLock struct {
	ch   chan struct{}
	refs int
}

// New returns a keeper storing its keys in db.
func New(db Store, log Logger) *Keeper {
	return &Keeper{db: db, log: log, TTL: DefaultTTL,
		MaxKeys: DefaultMaxKeys, StopReserve: DefaultStopReserve,
		Now:   time.Now,
		locks: map[[32]byte]*keyLock{}}
}

type seedKey struct{}

type appliedKey struct{}

// Applied reports whether the request's key already took effect: an
// earlier execution committed its change and died (or failed with a 5xx)
// before its answer was stored. A handler that changes a state (pause,
// resume, cancel) must then not change it again, since the state may
// have moved on since (a pause applied, then a resume, then the pause's
// retry would undo the resume): it answers the state as it is now. A
// handler that creates something executes again, and finds what it made
// through the seed.
func Applied(ctx context.Context) bool {
	applied, _ := ctx.Value(appliedKey{}).(bool)
	return applied
}

// Seed returns the random seed of the idempotency key a request carries,
// stable across every execution of that key: a handler that creates
// something derives the new id from it (SeededID), so a request executed
// again after a crash finds what the first execution created instead of
// creating a second one.
func Seed(ctx context.Context) ([16]byte, bool) {
	s, ok := ctx.Value(seedKey{}).([16]byte)
	return s, ok
}

// SeededID derives a 16-byte id for purpose from the request's seed, or
// reports false if the request carries no Idempotency-Key.
func SeededID(ctx context.Context, purpose string) ([16]byte, bool) {
	s, ok := Seed(ctx)
	if !ok {
		return [16]byte{}, false
	}
	h := sha256.New()
	h.Write([]byte("satstream idempotent id\x00" + purpose + "\x00"))
	h.Write(s[:])
	var id [16]byte
	copy(id[:], h.Sum(nil))
	return id, true
}

// WithSeed returns ctx carrying seed, for tests of handlers.
func WithSeed(ctx context.Context, seed [16]byte) context.Context {
	return context.WithValue(ctx, seedKey{}, seed)
}

// lock takes the in-process lock of scope, or fails when ctx ends.
func (k *Keeper) lock(ctx context.Context, scope [32]byte) (func(), error) {
	k.mu.Lock()
	l := k.locks[scope]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[scope] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, scope)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// scopeOf names a key: the credential, the method and path, and the key.
func scopeOf(r *http.Request, key string) [32]byte {
	h := sha256.New()
	for _, p := range []string{r.Header.Get("Authorization"), r.Method,
		r.URL.Path, key} {

		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// validKey reports whether a key is 1..255 printable ASCII characters.
func validKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// Wrap returns h with Idempotency-Key handling. Requests without the
// header go straight to h.
func (k *Keeper) Wrap(h http.HandlerFunc) http.HandlerFunc {
	return k.wrap(h, false)
}

// WrapStop is Wrap for a request that stops something (a cancel or a
// pause), which the key cap must never refuse: a client flooding keys must
// not keep a payer or provider from stopping a subscription. At the cap
// such a key is still recorded, up to StopReserve more; beyond that the
// request executes without its key being recorded (logged), as a request
// without the header would.
func (k *Keeper) WrapStop(h http.HandlerFunc) http.HandlerFunc {
	return k.wrap(h, true)
}

func (k *Keeper) wrap(h http.HandlerFunc, stop bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		keys := r.Header.Values(Header)
		if len(keys) == 0 {
			h(w, r)
			return
		}
		if len(keys) > 1 || !validKey(keys[0]) {
			common.WriteError(w, http.StatusBadRequest,
				"invalid_field", Header, fmt.Sprintf("must be "+
					"one header of 1..%d printable ASCII "+
					"characters", MaxKeyLen))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			common.WriteError(w, http.StatusBadRequest,
				"bad_request", "", "request body unreadable "+
					"or too large")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		k.serve(w, r, h, keys[0], body, stop)
	}
}

func (k *Keeper) serve(w http.ResponseWriter, r *http.Request,
	h http.HandlerFunc, key string, body []byte, stop bool) {

	ctx := r.Context()
	scope := scopeOf(r, key)
	unlock, err := k.lock(ctx, scope)
	if err != nil {
		return
	}
	defer unlock()

	rec := &store.IdemRecord{Scope: scope, BodyHash: sha256.Sum256(body),
		CreatedAt: k.Now()}
	if _, err := rand.Read(rec.Seed[:]); err != nil {
		common.WriteInternalError(w, k.log, err)
		return
	}
	got, created, err := k.db.IdemBegin(ctx, rec, k.TTL, k.MaxKeys)
	if stop && errors.Is(err, store.ErrIdemFull) {
		got, created, err = k.db.IdemBegin(ctx, rec, k.TTL,
			k.MaxKeys+k.StopReserve)
		if errors.Is(err, store.ErrIdemFull) {
			k.log.Warnf("Idempotency-Key of %s %s not recorded, "+
				"executed anyway (a stop is never refused): %v",
				r.Method, r.URL.Path, err)
			h(w, r)
			return
		}
	}
	switch {
	case errors.Is(err, store.ErrIdemFull):
		k.log.Warnf("Idempotency-Key refused: %v", err)
		common.WriteError(w, http.StatusTooManyRequests,
			"idempotency_keys_exhausted", Header, fmt.Sprintf(
				"the daemon remembers at most %d idempotency "+
					"keys per %v and holds that many; retry "+
					"later or send the request without %s",
				k.MaxKeys, k.TTL, Header))
		return
	case err != nil:
		common.WriteInternalError(w, k.log, err)
		return
	}
	if !created {
		if got.BodyHash != rec.BodyHash {
			common.WriteError(w, http.StatusConflict,
				"idempotency_key_reused", Header, "this "+
					"Idempotency-Key was used with a "+
					"different request body; use a new key "+
					"for a new request")
			return
		}
		if got.Done {
			if got.ContentType != "" {
				w.Header().Set("Content-Type", got.ContentType)
			}
			w.Header().Set(ReplayedHeader, "true")
			w.WriteHeader(int(got.Status))
			_, _ = w.Write(got.Body)
			return
		}
		// Begun but never finished: the daemon stopped while
		// executing it, or it failed with a 5xx. Execute again with
		// the first seed, so what it created is found, not made twice;
		// if its effect was committed (Applied), tell the handler, so
		// a state change is not applied a second time.
	}

	// Every write the handler commits marks the key Applied in the same
	// transaction (store.WithIdemKey): the effect and the record that
	// it happened can't be separated by a crash.
	var active atomic.Bool
	active.Store(true)
	hctx := store.WithIdemKey(WithSeed(ctx, got.Seed), scope, got.Seed,
		&active)
	if !created && got.Applied {
		hctx = context.WithValue(hctx, appliedKey{}, true)
	}
	rw := &recorder{ResponseWriter: w, status: http.StatusOK}
	h(rw, r.WithContext(hctx))
	active.Store(false)
	if rw.status >= 500 || rw.overflow {
		// Not recorded: a retry executes again (with the same seed).
		return
	}
	got.Done = true
	got.Status = uint32(rw.status)
	got.ContentType = rw.Header().Get("Content-Type")
	got.Body = rw.body.Bytes()
	err = k.db.IdemFinish(context.WithoutCancel(ctx), got, k.Now())
	if err != nil {
		k.log.Errorf("Recording the result of Idempotency-Key %s "+
			"failed (a retry executes again): %v",
			hex.EncodeToString(scope[:4]), err)
	}
}

// recorder passes a response through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	if r.body.Len()+len(b) > maxBody {
		r.overflow = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}
