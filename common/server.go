package common

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server limits both daemons apply to their API and metrics listeners
// unless the api.* options say otherwise. A client that sends its headers
// or body slower than this is dropped, so a handful of slow connections
// can't hold the daemon's file descriptors or goroutines (slowloris).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second

	// DefaultReadTimeout bounds reading a whole request, body
	// included: API bodies are at most 64 KiB.
	DefaultReadTimeout = 30 * time.Second

	// DefaultWriteTimeout bounds writing a response, counted from the
	// end of the request's headers.
	DefaultWriteTimeout = 30 * time.Second

	// DefaultIdleTimeout closes a keep-alive connection that sends no
	// further request.
	DefaultIdleTimeout = 2 * time.Minute

	// DefaultMaxConns caps open connections per listener; further
	// clients wait in the kernel's accept queue.
	DefaultMaxConns = 256

	// maxHeaderBytes bounds a request's headers.
	maxHeaderBytes = 64 << 10
)

// ErrServerLimits reports a timeout or connection cap that can't work.
var ErrServerLimits = errors.New("invalid server limits")

// ServerLimits are the timeouts and connection cap of one HTTP server.
type ServerLimits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxConns          int
}

// DefaultServerLimits returns the defaults above.
func DefaultServerLimits() ServerLimits {
	return ServerLimits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxConns:          DefaultMaxConns,
	}
}

// Validate refuses limits that would turn a timeout or the cap off.
func (l ServerLimits) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"readheadertimeout", l.ReadHeaderTimeout},
		{"readtimeout", l.ReadTimeout},
		{"writetimeout", l.WriteTimeout},
		{"idletimeout", l.IdleTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %v",
				ErrServerLimits, d.name, d.v)
		}
	}
	if l.MaxConns < 1 {
		return fmt.Errorf("%w: maxconns must be at least 1, got %d",
			ErrServerLimits, l.MaxConns)
	}
	return nil
}

// Server is one HTTP(S) listener with its timeouts, connection cap and
// graceful shutdown: the part of a daemon both satstream daemons share for
// their API and metrics endpoints.
type Server struct {
	name string
	ln   net.Listener
	srv  *http.Server
	tls  bool

	closeOnce sync.Once
}

// Listen binds addr for handler. With tlsConf the server speaks HTTPS
// (HTTP/1.1 only: the API has no use for HTTP/2's larger surface);
// without, plain HTTP. Nothing is served until Serve.
func Listen(name, addr string, handler http.Handler, tlsConf *tls.Config,
	limits ServerLimits) (*Server, error) {

	if err := limits.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		name: name,
		ln:   newLimitListener(ln, limits.MaxConns),
		srv: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: limits.ReadHeaderTimeout,
			ReadTimeout:       limits.ReadTimeout,
			WriteTimeout:      limits.WriteTimeout,
			IdleTimeout:       limits.IdleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
		},
	}
	if tlsConf != nil {
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"http/1.1"}
		s.srv.TLSConfig = conf
		// An empty, non-nil map keeps net/http from enabling
		// HTTP/2 on its own.
		s.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn,
			http.Handler){}
		s.tls = true
	}
	return s, nil
}

// Addr is the address the server is bound to (port 0 resolved).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Name is what the server was called in Listen, for messages.
func (s *Server) Name() string { return s.name }

// Serve serves until Shutdown, then returns nil; any other return is a
// failure of the listener.
func (s *Server) Serve() error {
	var err error
	if s.tls {
		err = s.srv.ServeTLS(s.ln, "", "")
	} else {
		err = s.srv.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s server: %w", s.name, err)
}

// Shutdown stops accepting, lets requests in progress finish until ctx
// ends, then closes what is left. It also releases the listener of a
// server that never served. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		err = s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		_ = s.ln.Close()
	})
	return err
}

// limitListener accepts at most max connections at a time (the shape of
// x/net/netutil.LimitListener, without the dependency).
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{
		Listener: ln,
		sem:      make(chan struct{}, max),
		done:     make(chan struct{}),
	}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// Close stops Accept, including one waiting for a slot.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn gives its slot back once, on Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close implements net.Conn.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
