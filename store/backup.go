package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// A backup file is our header, badger's backup stream cut into frames, an
// empty frame and a SHA-256 of everything before it. Badger's stream alone
// has no end marker, so a backup cut short at a record boundary would
// restore silently incomplete; the trailer makes that an error.
//
//	magic(16) | format(1) | schema(4 BE) | { len(4 BE) | bytes }* | 0(4) | sha256(32)
var backupMagic = []byte("SATSTREAM-BACKUP")

const (
	backupFormat   byte = 1
	maxFrame            = 1 << 20
	restoreSuffix       = ".restoring"
	loadMaxPending      = 16
)

// Backup writes a consistent snapshot of the whole store to w while the
// store stays in use. Restore turns the file back into a store directory.
func (db *DB) Backup(ctx context.Context, w io.Writer) error {
	if err := db.enter(); err != nil {
		return err
	}
	defer db.users.Done()
	if err := ctx.Err(); err != nil {
		return err
	}

	fw := &frameWriter{ctx: ctx, w: w, h: sha256.New()}
	hdr := make([]byte, 0, len(backupMagic)+5)
	hdr = append(hdr, backupMagic...)
	hdr = append(hdr, backupFormat)
	hdr = append(hdr, be32(SchemaVersion)...)
	if err := fw.raw(hdr); err != nil {
		return fmt.Errorf("store: backup header: %w", err)
	}

	// One producer means one read transaction, so the backup is a single
	// snapshot: a credit is either wholly in it or not at all.
	stream := db.bdb.NewStream()
	stream.NumGo = 1
	stream.LogPrefix = "store.Backup"
	if _, err := stream.Backup(fw, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	// Like a View, a backup must not hold a step that is not on disk yet
	// (restoring it would bring back a credit the ledger lost): counted
	// after the stream, every step it read is covered.
	if err := db.waitSynced(ctx, db.commitStarted.Load()); err != nil {
		return err
	}
	if err := fw.finish(); err != nil {
		return fmt.Errorf("store: backup trailer: %w", err)
	}
	log.Infof("Backed up store %s", db.dir)
	return nil
}

// frameWriter frames badger's many small writes and hashes what it writes.
type frameWriter struct {
	ctx context.Context
	w   io.Writer
	h   hash.Hash
	buf []byte
}

func (f *frameWriter) raw(b []byte) error {
	f.h.Write(b)
	_, err := f.w.Write(b)
	return err
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		room := maxFrame - len(f.buf)
		if room > len(p) {
			room = len(p)
		}
		f.buf = append(f.buf, p[:room]...)
		p = p[room:]
		if len(f.buf) == maxFrame {
			if err := f.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (f *frameWriter) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	if err := f.raw(be32(uint32(len(f.buf)))); err != nil {
		return err
	}
	if err := f.raw(f.buf); err != nil {
		return err
	}
	f.buf = f.buf[:0]
	return nil
}

func (f *frameWriter) finish() error {
	if err := f.flush(); err != nil {
		return err
	}
	if err := f.raw(be32(0)); err != nil {
		return err
	}
	_, err := f.w.Write(f.h.Sum(nil))
	return err
}

// frameReader undoes frameWriter. It reports io.EOF only after the trailer
// checked out, so badger's Load fails on a truncated or altered file.
type frameReader struct {
	ctx context.Context
	// space, if set, is checked before each frame: badger writes what
	// it loads through memory maps, so it must stop before the disk is
	// full.
	space *spaceGuard
	r     io.Reader
	h     hash.Hash
	left  uint32
	done  bool
}

func (f *frameReader) read(b []byte) error {
	if _, err := io.ReadFull(f.r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: backup truncated: %v", ErrCorrupt, err)
	}
	f.h.Write(b)
	return nil
}

func (f *frameReader) Read(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	for f.left == 0 {
		if f.done {
			return 0, io.EOF
		}
		if err := f.space.check(); err != nil {
			return 0, err
		}
		var l [4]byte
		if err := f.read(l[:]); err != nil {
			return 0, err
		}
		f.left = binary.BigEndian.Uint32(l[:])
		if f.left > maxFrame {
			return 0, fmt.Errorf("%w: backup frame of %d bytes", ErrCorrupt, f.left)
		}
		if f.left == 0 {
			want := f.h.Sum(nil)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(f.r, got); err != nil {
				return 0, fmt.Errorf("%w: backup checksum missing: %v", ErrCorrupt, err)
			}
			if !bytes.Equal(want, got) {
				return 0, fmt.Errorf("%w: backup checksum mismatch", ErrCorrupt)
			}
			f.done = true
		}
	}
	if uint32(len(p)) > f.left {
		p = p[:f.left]
	}
	if err := f.read(p); err != nil {
		return 0, err
	}
	f.left -= uint32(len(p))
	return len(p), nil
}

// Restore creates the store directory dir from a backup written by Backup.
// dir must not exist or be empty: a restore never merges into a ledger. The
// data is loaded into a sibling directory and renamed into place at the end,
// so an interrupted restore leaves no half-restored store behind.
func Restore(ctx context.Context, dir string, r io.Reader) (err error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s is not empty", ErrExists, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnreadable, err)
	}

	fr := &frameReader{ctx: ctx, r: r, h: sha256.New()}
	hdr := make([]byte, len(backupMagic)+5)
	if err := fr.read(hdr); err != nil {
		return err
	}
	if !bytes.Equal(hdr[:len(backupMagic)], backupMagic) {
		return fmt.Errorf("%w: not a satstream backup", ErrCorrupt)
	}
	if f := hdr[len(backupMagic)]; f != backupFormat {
		return fmt.Errorf("%w: backup format %d, this satstream reads %d",
			ErrSchemaTooNew, f, backupFormat)
	}
	schema := binary.BigEndian.Uint32(hdr[len(backupMagic)+1:])
	if schema > SchemaVersion {
		return fmt.Errorf("%w: backup has schema version %d, this satstream "+
			"understands up to %d", ErrSchemaTooNew, schema, SchemaVersion)
	}

	tmp := filepath.Clean(dir) + restoreSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("store: remove stale %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	opts := restoreOptions()
	space := newSpaceGuard(filepath.Dir(tmp), opts)
	if err := space.check(); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	bo := badger.DefaultOptions(tmp).
		WithLogger(&badgerLogger{}).
		WithMemTableSize(opts.MemTableSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false)
	bdb, err := openBadger(bo)
	if err != nil {
		return translateOpenErr(tmp, err)
	}
	space.lsm = func() uint64 { return lsmBytes(bdb) }
	fr.space = space
	if err := bdb.Load(fr, loadMaxPending); err != nil {
		_ = bdb.Close()
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrDiskFull) ||
			errors.Is(err, context.Canceled) ||
			errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("store: restore: %w", err)
		}
		return fmt.Errorf("%w: restore: %v", ErrCorrupt, err)
	}
	if !fr.done {
		_ = bdb.Close()
		return fmt.Errorf("%w: backup ended early", ErrCorrupt)
	}
	err = bdb.Sync()
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}

	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	log.Infof("Restored store %s from backup (schema %d)", dir, schema)
	return nil
}

// restoreOptions are the options Restore loads a backup with (tests
// replace them).
var restoreOptions = DefaultOptions

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
