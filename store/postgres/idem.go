package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/satstream/satstream/store"
)

// idemPrunePerCall bounds how many expired records one IdemBegin removes,
// as in the badger store.
const idemPrunePerCall = 64

// IdemBegin implements common/idem's Store with the badger store's
// contract: an unexpired record of rec.Scope, or an expired one that is
// kept (its effect applied, its answer never recorded: its seed is still
// needed), is returned with created false; otherwise rec is stored
// (replacing an expired one) and returned with created true;
// store.ErrIdemFull once maxRecords unexpired records exist. Pruning
// skips kept records. The records are shared by every receiver on the database, so a
// POST retried at another node is answered from the first.
func (s *Store) IdemBegin(ctx context.Context, rec *store.IdemRecord,
	ttl time.Duration, maxRecords uint64) (*store.IdemRecord, bool, error) {

	var (
		out     *store.IdemRecord
		created bool
		full    error
	)
	err := s.update(ctx, func(t *tx) error {
		out, created, full = nil, false, nil
		cutoff := ns(rec.CreatedAt.Add(-ttl))
		_, err := t.exec(`DELETE FROM idempotency WHERE scope IN (
			SELECT scope FROM idempotency WHERE created_ns <= $1
			AND NOT (applied AND NOT done)
			ORDER BY created_ns LIMIT $2)`, cutoff, idemPrunePerCall)
		if err != nil {
			return err
		}
		old, err := t.idem(rec.Scope)
		switch {
		case err == nil && (ns(old.CreatedAt) > cutoff ||
			(old.Applied && !old.Done)):

			out = old
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		var n uint64
		err = t.queryRow("SELECT count(*) FROM idempotency WHERE "+
			"created_ns > $1 AND scope <> $2", []any{cutoff,
			rec.Scope[:]}, &n)
		if err != nil {
			return err
		}
		if n >= maxRecords {
			// Refused, but the prune above commits, as on
			// badger: returning the error here would roll it
			// back, and expired keys would stay for as long as
			// the table is full.
			full = fmt.Errorf("%w: %d keys seen in the last %v "+
				"(the cap)", store.ErrIdemFull, n, ttl)
			return nil
		}
		if err := t.putIdem(rec); err != nil {
			return err
		}
		out, created = rec, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if full != nil {
		return nil, false, full
	}
	return out, created, nil
}

// IdemFinish records the response of a key begun with IdemBegin at now; a
// record replaced (other seed) or pruned meanwhile is left alone. Applied
// is kept as the handler's transactions set it; a record whose effect was
// applied is answered for a time to live from now (it may have been kept
// past its first one).
func (s *Store) IdemFinish(ctx context.Context, rec *store.IdemRecord,
	now time.Time) error {

	return s.update(ctx, func(t *tx) error {
		old, err := t.idem(rec.Scope)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		case old.Seed != rec.Seed:
			return nil
		}
		out := *rec
		out.Applied = old.Applied
		out.CreatedAt = old.CreatedAt
		if old.Applied {
			out.CreatedAt = now
		}
		return t.putIdem(&out)
	})
}

// IdemCount returns the number of idempotency records stored.
func (s *Store) IdemCount(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.view(ctx, func(t *tx) error {
		return t.queryRow("SELECT count(*) FROM idempotency", nil, &n)
	})
	return n, err
}

func (t *tx) idem(scope [32]byte) (*store.IdemRecord, error) {
	r := &store.IdemRecord{Scope: scope}
	var (
		body, seed, ctype []byte
		created, status   int64
	)
	err := t.queryRow(`SELECT body_hash, seed, created_ns, done, applied,
			status, content_type, body
		FROM idempotency WHERE scope = $1`, []any{scope[:]}, &body,
		&seed, &created, &r.Done, &r.Applied, &status, &ctype, &r.Body)
	if err != nil {
		return nil, err
	}
	if err := copyFixed(r.BodyHash[:], body, "body hash"); err != nil {
		return nil, err
	}
	if err := copyFixed(r.Seed[:], seed, "seed"); err != nil {
		return nil, err
	}
	r.CreatedAt = fromNS(created)
	r.Status = uint32(status)
	r.ContentType = string(ctype)
	if len(r.Body) == 0 {
		r.Body = nil
	}
	return r, nil
}

func (t *tx) putIdem(r *store.IdemRecord) error {
	body := r.Body
	if body == nil {
		body = []byte{}
	}
	_, err := t.exec(`INSERT INTO idempotency (scope, body_hash, seed,
			created_ns, done, applied, status, content_type, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (scope) DO UPDATE SET body_hash = $2, seed = $3,
			created_ns = $4, done = $5, applied = $6, status = $7,
			content_type = $8, body = $9`, r.Scope[:], r.BodyHash[:],
		r.Seed[:], ns(r.CreatedAt), r.Done, r.Applied, int64(r.Status),
		r.ContentType, body)
	return err
}

// markIdem marks the record of the request this transaction writes for
// (store.IdemMarkOf) applied, in the same commit as its effect; a record
// gone or replaced by a newer request fails the step with
// store.ErrIdemLost, so nothing is committed that no key remembers.
func (t *tx) markIdem() error {
	if !t.wrote {
		return nil
	}
	scope, seed, ok := store.IdemMarkOf(t.ctx)
	if !ok {
		return nil
	}
	var applied, done bool
	var got []byte
	err := t.queryRow(`SELECT seed, applied, done FROM idempotency
		WHERE scope = $1`, []any{scope[:]}, &got, &applied, &done)
	switch {
	case errors.Is(err, store.ErrNotFound) ||
		(err == nil && string(got) != string(seed[:])):
		return fmt.Errorf("%w (its record is gone)", store.ErrIdemLost)
	case err != nil:
		return err
	case applied || done:
		return nil
	}
	_, err = t.exec(`UPDATE idempotency SET applied = true
		WHERE scope = $1`, scope[:])
	return err
}
