// Package pgtest starts throw-away PostgreSQL servers for tests: initdb in a
// fresh temporary directory, postgres listening on a unix socket in that
// directory and on a free 127.0.0.1 port, one database per test, and
// everything stopped (pg_ctl stop -m fast) and removed in t.Cleanup.
//
// Binaries are looked up in $SATSTREAM_PG_BIN, then PATH, then the newest
// /usr/lib/postgresql/*/bin (Debian's layout; `apt-get install postgresql`
// puts them there and not in PATH). When they are missing the test is
// skipped with a message saying how to install them, unless
// SATSTREAM_REQUIRE_POSTGRES=1 (set by itest/run.sh), in which case it
// fails.
//
// PostgreSQL refuses to run as root. When the test runs as root, the
// server runs as an unprivileged user: $SATSTREAM_PG_USER if set, else
// "postgres" (created by Debian's package), else "satstream-pg", created
// with useradd if missing. The temporary directory is owned by that user.
// As a backstop against a test binary that is killed before its cleanup,
// the postmaster gets SIGQUIT (immediate shutdown) when the test process
// dies.
//
// Typical use:
//
//	srv := pgtest.Start(t)       // one server for the whole test
//	dsn := srv.NewDatabase(t)    // a fresh database, dropped in cleanup
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the environment variable that turns "PostgreSQL is not
// installed" from a skip into a failure, so CI cannot pass by skipping.
const RequireEnv = "SATSTREAM_REQUIRE_POSTGRES"

// Superuser is the role initdb creates; tests connect as it (trust auth,
// reachable only through the private socket directory and loopback).
const Superuser = "satstream"

// startTimeout bounds how long we wait for a started server to accept
// connections; a loaded CI machine can take a few seconds.
const startTimeout = 60 * time.Second

// Server is one running throw-away PostgreSQL cluster.
type Server struct {
	// Dir is the temporary directory holding the data directory, the
	// socket and the server log.
	Dir string
	// SocketDir is the directory of the unix socket (host= in a DSN).
	SocketDir string
	// Port is the TCP port on 127.0.0.1 (and the socket's number).
	Port int

	bin     string
	cred    *syscall.Credential
	cmd     *exec.Cmd
	exited  chan struct{}
	dbCount atomic.Int64
}

// BinDir returns the directory holding initdb, pg_ctl and postgres, or an
// error saying how to get them.
func BinDir() (string, error) {
	if d := os.Getenv("SATSTREAM_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("SATSTREAM_PG_BIN=%s: %w", d, err)
		}
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first.
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl, " +
		"postgres) not found in $SATSTREAM_PG_BIN, PATH or " +
		"/usr/lib/postgresql/*/bin; install them with " +
		"`apt-get install -y postgresql`")
}

// Start initdbs and starts a server for t, stopped and removed in
// t.Cleanup. Without PostgreSQL binaries it skips t (fails it with
// SATSTREAM_REQUIRE_POSTGRES=1).
func Start(t testing.TB) *Server {
	t.Helper()

	bin, err := BinDir()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s=1: %v", RequireEnv, err)
		}
		t.Skipf("skipping PostgreSQL test: %v (set %s=1 to fail "+
			"instead)", err, RequireEnv)
	}

	cred, err := serverCredential()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	// Not t.TempDir: its parents are 0700 root directories the server's
	// user could not enter, and the socket path must stay short (108
	// bytes at most).
	dir, err := os.MkdirTemp("", "satstream-pg-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: remove %s: %v", dir, err)
		}
	})
	if cred != nil {
		err := os.Chown(dir, int(cred.Uid), int(cred.Gid))
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}

	s := &Server{
		Dir:       dir,
		SocketDir: dir,
		bin:       bin,
		cred:      cred,
	}
	data := s.dataDir()

	out, err := s.command("initdb", "-D", data, "-U", Superuser,
		"--auth=trust", "--encoding=UTF8", "--locale=C",
		"--no-instructions").CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	// A free port can be taken by someone else before postgres binds it;
	// try a few.
	for attempt := 0; ; attempt++ {
		err = s.start()
		if err == nil {
			break
		}
		if attempt == 4 {
			log, _ := os.ReadFile(s.logPath())
			t.Fatalf("pgtest: start postgres: %v\nserver log:\n%s",
				err, log)
		}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }

func (s *Server) logPath() string { return filepath.Join(s.Dir, "server.log") }

// command prepares a PostgreSQL binary to run as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// start runs the postmaster on a free port and waits until it accepts
// connections.
func (s *Server) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	return s.startOn(port)
}

// startOn runs the postmaster on port and waits until it accepts
// connections.
func (s *Server) startOn(port int) error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|
		os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if s.cred != nil {
		_ = os.Chown(s.logPath(), int(s.cred.Uid), int(s.cred.Gid))
	}

	cmd := s.command("postgres", "-D", s.dataDir(),
		"-k", s.SocketDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=200",
		"-c", "shared_buffers=16MB",
		// Durable like production: the store's Update promises
		// that a committed step is on disk.
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "log_min_messages=warning",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Backstop: a test binary killed before its cleanup must not leave
	// a server running.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.Port = cmd, exited, port

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(),
			5*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-exited:
			return fmt.Errorf("postgres exited at start: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-exited
			return fmt.Errorf("postgres not accepting connections "+
				"after %v: %w", startTimeout, err)
		}
	}
}

// stop shuts the server down the way pg_ctl stop -m fast does and waits
// for the postmaster to exit.
func (s *Server) stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	out, err := s.command("pg_ctl", "stop", "-D", s.dataDir(), "-m",
		"fast", "-w", "-t", "60").CombinedOutput()
	if err != nil {
		// Make sure it is gone anyway: never leave a server behind.
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	}
	select {
	case <-s.exited:
	case <-time.After(2 * time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the server now (the cleanup then does nothing more); tests
// use it to see what a store does when its database goes away.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart stops the server (fast shutdown, closing every connection) and
// starts it again on the same port, so DSNs handed out stay valid: tests
// use it to see a store come back after a database restart.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := s.startOn(s.Port); err != nil {
		log, _ := os.ReadFile(s.logPath())
		t.Fatalf("pgtest: restart postgres: %v\nserver log:\n%s", err,
			log)
	}
}

// DSN returns a connection string for database db over the unix socket.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		s.SocketDir, s.Port, Superuser, db)
}

// TCPDSN returns a connection string for database db over 127.0.0.1, as
// a process that cannot reach the socket directory would use.
func (s *Server) TCPDSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable",
		Superuser, s.Port, db)
}

// NewDatabase creates an empty database for t, dropped in t.Cleanup
// (forcefully, closing connections a test left open), and returns its
// unix-socket DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", s.dbCount.Add(1), sanitize(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+
		pgx.Identifier{name}.Sanitize()); err != nil {

		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
			return // stopped by the test; removed with the directory
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(),
			time.Minute)
		defer cancel()
		err := s.exec(ctx, "DROP DATABASE IF EXISTS "+
			pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.DSN(name)
}

// exec runs one statement in the maintenance database.
func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var userOnce struct {
	sync.Once
	cred *syscall.Credential
	err  error
}

// serverCredential returns the unprivileged user to run PostgreSQL as
// when we are root (nil when we are not: the server runs as us).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	userOnce.Do(func() {
		userOnce.cred, userOnce.err = lookupServerUser()
	})
	return userOnce.cred, userOnce.err
}

func lookupServerUser() (*syscall.Credential, error) {
	names := []string{"postgres", "satstream-pg"}
	if n := os.Getenv("SATSTREAM_PG_USER"); n != "" {
		names = []string{n}
	}
	for _, n := range names {
		if u, err := user.Lookup(n); err == nil {
			return credential(u)
		}
	}
	name := names[len(names)-1]
	out, err := exec.Command("useradd", "--system", "--no-create-home",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput()
	// Another test process may have created it at the same time.
	if u, lerr := user.Lookup(name); lerr == nil {
		return credential(u)
	}
	return nil, fmt.Errorf("running as root and PostgreSQL refuses root: "+
		"create an unprivileged user %q (useradd: %v: %s) or set "+
		"SATSTREAM_PG_USER", name, err, out)
}

func credential(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s is root", u.Username)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid),
		NoSetGroups: true}, nil
}
