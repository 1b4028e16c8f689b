package store

import "errors"

var (
	// ErrNotFound is returned when a record asked for by key does not exist,
	// so callers can tell "absent" from "broken" with errors.Is.
	ErrNotFound = errors.New("store: not found")

	// ErrLocked is returned by Open when another process (or another DB in
	// this process) holds the directory: two daemons on one ledger would
	// count payments twice.
	ErrLocked = errors.New("store: directory is locked by another process")

	// ErrUnreadable is returned by Open when the directory cannot be read or
	// written with our permissions.
	ErrUnreadable = errors.New("store: directory is not accessible")

	// ErrCorrupt is returned when badger cannot open the directory or a
	// stored value cannot be decoded; the data needs a human (or a backup).
	ErrCorrupt = errors.New("store: data is corrupt")

	// ErrForeign is returned by Open when the directory holds something that
	// is not a satstream store, so we never write our ledger into it.
	ErrForeign = errors.New("store: directory is not a satstream store")

	// ErrSchemaTooNew is returned when the store was written by a newer
	// version of satstream; opening it with older code could lose fields.
	ErrSchemaTooNew = errors.New("store: schema version is newer than this program supports")

	// ErrClosed is returned by every operation started after Close.
	ErrClosed = errors.New("store: closed")

	// ErrFailed is returned by the step whose write or fsync failed and,
	// from then on, by every operation: the step may be visible in memory
	// without being on disk (after a failed fsync the kernel may even have
	// dropped written pages), so nothing the store holds can be trusted.
	// DB.Failed and DB.Err report it; the daemon must stop, and a restart
	// re-reads the ledger from disk. The cause (ErrSyncFailed, or badger's
	// write error) is wrapped too.
	ErrFailed = errors.New("store: failed; restart to re-read the ledger from disk")

	// ErrSyncFailed is the cause wrapped in ErrFailed when a group-commit
	// fsync failed.
	ErrSyncFailed = errors.New("store: sync to disk failed")

	// ErrStalled is the cause wrapped in ErrFailed when a badger commit,
	// a group-commit fsync or Close took longer than Options.StallTimeout:
	// a disk that hangs (or a badger that keeps retrying a failing
	// memtable flush and blocks writes) would otherwise wedge the daemon
	// without ever reporting an error.
	ErrStalled = errors.New("store: disk stalled")

	// ErrDiskFull is returned by a write step (and by Open and Close) when
	// the ledger's filesystem has less free space than Options.MinFreeBytes.
	// Nothing of the step is written and the store does not fail: writes
	// resume by themselves once space returns. It wraps syscall.ENOSPC.
	ErrDiskFull = errors.New("store: disk full")

	// ErrConflict is returned when a transaction kept conflicting with
	// concurrent ones beyond the retry budget.
	ErrConflict = errors.New("store: transaction conflict")

	// ErrUnavailable is returned by a step of a database-server backend
	// (store/postgres) when the database cannot be reached or is not
	// serving. Nothing of the step is known to be written (a COMMIT
	// whose answer was lost says so in the message): the receiver must
	// refuse the payment rather than settle it uncredited, and try
	// again later; the store itself stays usable.
	ErrUnavailable = errors.New("store: database unavailable")

	// ErrTooBig is returned when one logical step writes more than badger
	// accepts in a single transaction; the caller must split the step.
	ErrTooBig = errors.New("store: transaction too big")

	// ErrDuplicateHash is returned by PutAttempt when the payment hash already
	// belongs to another attempt: paying one hash from two attempts would
	// pay twice for one credit.
	ErrDuplicateHash = errors.New("store: payment hash already used by another attempt")

	// ErrInvalid is returned when a record cannot be stored as given, for
	// example a zero id or an unknown state value.
	ErrInvalid = errors.New("store: invalid record")

	// ErrExists is returned by Restore when the target directory is not empty,
	// so a restore never merges into or overwrites a live ledger.
	ErrExists = errors.New("store: target already exists")

	// ErrStop may be returned by a ForEach callback to end the iteration
	// early; the ForEach call then returns nil.
	ErrStop = errors.New("store: stop iteration")
)
