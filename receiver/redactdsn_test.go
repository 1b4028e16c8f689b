package receiver

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedactDSNLeakedQueryPasswordWithUser: a URL DSN with a user in the
// userinfo and the password in the query (libpq accepts both) keeps the
// password, and daemon.go logs RedactDSN(dsn) at every start.
func TestRedactDSNLeakedQueryPasswordWithUser(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"postgres://satstream@db/satstream?password=hunter2",
		"postgres://satstream:pw@db/satstream?password=hunter2",
		"postgres://satstream@db/satstream?sslpassword=hunter2",
		"postgres://satstream@db/satstream?SSLPassword=hunter2",
		"host=db user=satstream sslpassword=hunter2",
	} {
		require.NotContains(t, RedactDSN(in), "hunter2", in)
	}
}
