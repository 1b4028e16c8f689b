package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// txn wraps one badger transaction with the record-level helpers both the
// receiver and the sender tables use.
type txn struct {
	bt        *badger.Txn
	update    bool
	dirty     bool
	iterating bool

	// durable, set on a View's transaction, returns once every step up
	// to the badger version ver is on disk. Each read calls it before
	// handing data to the caller: a record written by a step that is
	// committed but not yet synced is never shown, while a read of
	// records that are on disk does not wait for unrelated commits. A
	// read that finds nothing (the absence may be a deletion not yet on
	// disk) or walks a range waits for the whole snapshot.
	durable func(ver uint64) error
	// durableErr keeps the first failed wait, so the View fails even if
	// fn swallowed the read's error.
	durableErr error
}

// seen gates a read that found a record of version ver.
func (t *txn) seen(ver uint64) error {
	if t.durable == nil {
		return nil
	}
	return t.wait(ver)
}

// wait runs the durability gate and remembers its failure.
func (t *txn) wait(ver uint64) error {
	if t.durableErr != nil {
		return t.durableErr
	}
	if err := t.durable(ver); err != nil {
		t.durableErr = err
		return err
	}
	return nil
}

// seenSnapshot gates a read whose answer may rest on any step of the
// snapshot.
func (t *txn) seenSnapshot() error {
	if t.durable == nil {
		return nil
	}
	return t.wait(t.bt.ReadTs())
}

// errNestedIteration guards a badger limit: a read-write transaction may
// have only one iterator open (badger panics otherwise).
var errNestedIteration = fmt.Errorf("%w: nested ForEach inside an Update", ErrInvalid)

// getRaw returns a copy of the value at k, or ErrNotFound.
func (t *txn) getRaw(k []byte) ([]byte, error) {
	item, err := t.bt.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		if err := t.seenSnapshot(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, translateErr(err)
	}
	if err := t.seen(item.Version()); err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// get decodes the record at k into r.
func (t *txn) get(k []byte, r recorder) error {
	item, err := t.bt.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		if err := t.seenSnapshot(); err != nil {
			return err
		}
		return ErrNotFound
	}
	if err != nil {
		return translateErr(err)
	}
	if err := t.seen(item.Version()); err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		return decodeRecord(v, r)
	})
}

// exists reports whether k is present.
func (t *txn) exists(k []byte) (bool, error) {
	item, err := t.bt.Get(k)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, t.seenSnapshot()
	case err != nil:
		return false, translateErr(err)
	}
	return true, t.seen(item.Version())
}

// set writes k = v.
func (t *txn) set(k, v []byte) error {
	if !t.update {
		return translateErr(badger.ErrReadOnlyTxn)
	}
	t.dirty = true
	return translateErr(t.bt.Set(k, v))
}

// put encodes r and writes it at k.
func (t *txn) put(k []byte, r recorder) error {
	v, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return t.set(k, v)
}

// del removes k.
func (t *txn) del(k []byte) error {
	if !t.update {
		return translateErr(badger.ErrReadOnlyTxn)
	}
	t.dirty = true
	return translateErr(t.bt.Delete(k))
}

// getU64 reads a meta counter stored as 8 big-endian bytes; absent is 0.
func (t *txn) getU64(k []byte) (uint64, error) {
	v, err := t.getRaw(k)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case len(v) != 8:
		return 0, fmt.Errorf("%w: meta value %x of %d bytes", ErrCorrupt, k, len(v))
	}
	return beU64(v), nil
}

// scan walks the keys under prefix, starting at start (inclusive; nil means
// the beginning of prefix), one at a time so nothing is loaded in bulk. fn
// gets the key and a lazy value accessor valid only during the call. A fn
// returning ErrStop ends the walk without error.
func (t *txn) scan(prefix, start []byte, values bool,
	fn func(k []byte, item *badger.Item) error) error {

	if t.update && t.iterating {
		return errNestedIteration
	}
	if err := t.seenSnapshot(); err != nil {
		return err
	}
	t.iterating = true
	defer func() { t.iterating = false }()

	it := t.bt.NewIterator(badger.IteratorOptions{
		PrefetchValues: values,
		PrefetchSize:   16,
		Prefix:         prefix,
	})
	defer it.Close()
	if start == nil || bytes.Compare(start, prefix) < 0 {
		start = prefix
	}
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		err := fn(item.Key(), item)
		if errors.Is(err, ErrStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// successor returns the smallest key strictly greater than k, used to resume
// a scan of fixed-width keys after a cursor.
func successor(k []byte) []byte {
	n := make([]byte, len(k)+1)
	copy(n, k)
	return n
}

// limited wraps fn so that it stops after limit calls (limit <= 0: none).
func limited[T any](limit int, fn func(T) error) func(T) error {
	if limit <= 0 {
		return fn
	}
	n := 0
	return func(v T) error {
		if err := fn(v); err != nil {
			return err
		}
		n++
		if n >= limit {
			return ErrStop
		}
		return nil
	}
}

// forEachSubscription walks one side's subscriptions in id order: all of
// them from the records under recPrefix when state is 0, else the ids in the
// state index under stateIdx+state, each loaded by load. Paging continues
// after page.After. Both daemons list subscriptions this way.
func forEachSubscription[R recorder](t *txn, recPrefix, stateIdx byte,
	state uint8, page Page, newRec func() R, load func(SubID) (R, error),
	fn func(R) error) error {

	fn = limited(page.Limit, fn)
	if state == 0 {
		var start []byte
		if page.After != nil {
			start = successor(key(recPrefix, page.After[:]))
		}
		return t.scan([]byte{recPrefix}, start, true,
			func(_ []byte, item *badger.Item) error {
				r := newRec()
				err := item.Value(func(v []byte) error {
					return decodeRecord(v, r)
				})
				if err != nil {
					return err
				}
				return fn(r)
			})
	}

	prefix := []byte{stateIdx, state}
	var start []byte
	if page.After != nil {
		start = successor(key(stateIdx, []byte{state}, page.After[:]))
	}
	return t.scan(prefix, start, false, func(k []byte, _ *badger.Item) error {
		var id SubID
		copy(id[:], k[len(prefix):])
		r, err := load(id)
		if err != nil {
			return fmt.Errorf("state index: %w", err)
		}
		return fn(r)
	})
}
