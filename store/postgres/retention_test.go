package postgres_test

import (
	"testing"

	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
)

// TestIdemPruneSticksWhenFull: an IdemBegin refused at the cap keeps the
// prune it made on the way, as on badger (storetest).
func TestIdemPruneSticksWhenFull(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	storetest.RunIdemPruneSticksWhenFull(t, open(t, srv.NewDatabase(t), 1))
}
