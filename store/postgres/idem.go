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
// contract: an unexpired record of rec.Scope is returned with created
// false; otherwise rec is stored (replacing an expired one) and returned
// with created true; store.ErrIdemFull once maxRecords unexpired records
// exist. The records are shared by every receiver on the database, so a
// POST retried at another node is answered from the first.
func (s *Store) IdemBegin(ctx context.Context, rec *store.IdemRecord,
	ttl time.Duration, maxRecords uint64) (*store.IdemRecord, bool, error) {

	var (
		out     *store.IdemRecord
		created bool
	)
	err := s.update(ctx, func(t *tx) error {
		out, created = nil, false
		cutoff := ns(rec.CreatedAt.Add(-ttl))
		_, err := t.exec(`DELETE FROM idempotency WHERE scope IN (
			SELECT scope FROM idempotency WHERE created_ns <= $1
			ORDER BY created_ns LIMIT $2)`, cutoff, idemPrunePerCall)
		if err != nil {
			return err
		}
		old, err := t.idem(rec.Scope)
		switch {
		case err == nil && ns(old.CreatedAt) > cutoff:
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
			return fmt.Errorf("%w: %d keys seen in the last %v (the "+
				"cap)", store.ErrIdemFull, n, ttl)
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
	return out, created, nil
}

// IdemFinish records the response of a key begun with IdemBegin; a record
// replaced (other seed) or pruned meanwhile is left alone.
func (s *Store) IdemFinish(ctx context.Context, rec *store.IdemRecord) error {
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
		return t.putIdem(rec)
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
	err := t.queryRow(`SELECT body_hash, seed, created_ns, done, status,
			content_type, body
		FROM idempotency WHERE scope = $1`, []any{scope[:]}, &body,
		&seed, &created, &r.Done, &status, &ctype, &r.Body)
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
			created_ns, done, status, content_type, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (scope) DO UPDATE SET body_hash = $2, seed = $3,
			created_ns = $4, done = $5, status = $6, content_type = $7,
			body = $8`, r.Scope[:], r.BodyHash[:], r.Seed[:],
		ns(r.CreatedAt), r.Done, int64(r.Status), r.ContentType, body)
	return err
}
