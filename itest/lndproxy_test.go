//go:build itest

package itest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// rawCodec passes gRPC messages through as bytes, so the proxy needs no
// knowledge of lnd's services. It is named "proto" so lnd and lndclient
// see the content type they expect.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// lndProxy sits between a daemon and its lnd: every gRPC call is forwarded
// as it is, with the macaroon, but calls whose method name ends in one of
// the slowed suffixes wait first. It is how the fault suite makes lnd's
// settle and cancel slow without touching lnd or the daemon.
type lndProxy struct {
	Addr  string
	delay atomic.Int64
	slow  []string
	srv   *grpc.Server
}

// newLndProxy listens on a free loopback port in front of node, presenting
// node's own TLS certificate (so the daemon keeps trusting node's
// tls.cert), and delays the methods named by the suffixes in slow.
func newLndProxy(t *testing.T, node *regtest.Node, slow ...string) *lndProxy {
	t.Helper()
	creds, err := credentials.NewServerTLSFromFile(node.TLSCertPath,
		filepath.Join(node.Dir, "tls.key"))
	require.NoError(t, err)

	pem, err := os.ReadFile(node.TLSCertPath)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	backend, err := grpc.NewClient(node.RPCAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: pool})),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}),
			grpc.MaxCallRecvMsgSize(200<<20)))
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &lndProxy{Addr: ln.Addr().String(), slow: slow}
	p.srv = grpc.NewServer(grpc.Creds(creds),
		grpc.ForceServerCodec(rawCodec{}),
		grpc.MaxRecvMsgSize(200<<20),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			return p.forward(backend, ss)
		}))
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		p.srv.Stop()
		_ = backend.Close()
	})
	return p
}

// SetDelay sets how long each slowed call waits before it reaches lnd.
func (p *lndProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// forward relays one call (unary or streaming) to lnd and back.
func (p *lndProxy) forward(backend *grpc.ClientConn, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	ctx := ss.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx,
		md.Copy()))
	defer cancel()

	if d := time.Duration(p.delay.Load()); d > 0 {
		for _, s := range p.slow {
			if strings.HasSuffix(method, s) {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}

	cs, err := backend.NewStream(ctx, &grpc.StreamDesc{
		ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}

	// Client to lnd.
	upErr := make(chan error, 1)
	go func() {
		for {
			var msg []byte
			if err := ss.RecvMsg(&msg); err != nil {
				if errors.Is(err, io.EOF) {
					upErr <- cs.CloseSend()
					return
				}
				upErr <- err
				return
			}
			if err := cs.SendMsg(&msg); err != nil {
				upErr <- err
				return
			}
		}
	}()

	// lnd to client.
	if hdr, err := cs.Header(); err == nil {
		if err := ss.SendHeader(hdr); err != nil {
			return err
		}
	}
	for {
		var msg []byte
		if err := cs.RecvMsg(&msg); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&msg); err != nil {
			return err
		}
	}
}
