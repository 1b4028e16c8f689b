package common

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"gopkg.in/macaroon.v2"
)

// testMacaroon bakes an lnd-style macaroon offline holding the given
// "entity:action" permissions, as lnd's bakery would lay out its id.
func testMacaroon(t testing.TB, perms ...string) []byte {
	t.Helper()
	byEntity := map[string]*lnrpc.Op{}
	var ops []*lnrpc.Op
	for _, p := range perms {
		e, a, ok := strings.Cut(p, ":")
		require.True(t, ok, p)
		op := byEntity[e]
		if op == nil {
			op = &lnrpc.Op{Entity: e}
			byEntity[e] = op
			ops = append(ops, op)
		}
		op.Actions = append(op.Actions, a)
	}
	id, err := proto.Marshal(&lnrpc.MacaroonId{
		Nonce: []byte("0123456789abcdef"), StorageId: []byte("0"),
		Ops: ops,
	})
	require.NoError(t, err)
	m, err := macaroon.New([]byte("root key"), append([]byte{3}, id...),
		"lnd", macaroon.V2)
	require.NoError(t, err)
	b, err := m.MarshalBinary()
	require.NoError(t, err)
	return b
}

// testCertDER is a throw-away self-signed certificate.
func testCertDER(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lnd"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl,
		&key.PublicKey, key)
	require.NoError(t, err)
	return der
}
