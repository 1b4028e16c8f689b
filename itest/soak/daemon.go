package soak

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/satstream/satstream/itest/regtest"
)

// daemon is one satstream-receiver or satstream-sender process, run from a
// binary built for the soak, with its API and /metrics on free ports.
type daemon struct {
	name    string
	bin     string
	dir     string
	args    []string
	apiAddr string
	metrics string
	client  *http.Client
	token   string
	runs    int

	cmd  *exec.Cmd
	done chan struct{}
	log  string

	// ready says whether a /v1/health body means the daemon is up.
	ready func(h map[string]any) error
}

// buildDaemon builds cmd/<name> into dir (production build, no test
// tags) and returns the binary's path.
func buildDaemon(ctx context.Context, dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin,
		"github.com/satstream/satstream/cmd/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
	}
	return bin, nil
}

// freeAddr returns a free 127.0.0.1 port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func newDaemon(name, bin, dir string, args []string) (*daemon, error) {
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &daemon{
		name: name, bin: bin, dir: dir, apiAddr: api, metrics: metrics,
		args: append(args,
			"--datadir="+filepath.Join(dir, "data"),
			"--network=regtest",
			"--api.listen="+api,
			"--metrics.listen="+metrics,
		),
		client: &http.Client{Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			}},
	}, nil
}

// start runs the daemon and waits until its health says it is ready.
func (d *daemon) start(ctx context.Context) error {
	d.runs++
	d.log = filepath.Join(d.dir, fmt.Sprintf("run%d.log", d.runs))
	f, err := os.Create(d.log)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.bin, d.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	d.cmd, d.done = cmd, done
	return regtest.Poll(ctx, 2*time.Minute, func() error {
		select {
		case <-done:
			return fmt.Errorf("%s exited: see %s", d.name, d.log)
		default:
		}
		tok, err := os.ReadFile(filepath.Join(d.dir, "data",
			"regtest", "admin.token"))
		if err != nil {
			return err
		}
		d.token = strings.TrimSpace(string(tok))
		var h map[string]any
		if code := d.do(ctx, "GET", "/v1/health", nil, &h); code != 200 {
			return fmt.Errorf("%s health: HTTP %d", d.name, code)
		}
		return d.ready(h)
	})
}

// stop ends the daemon with SIGTERM and waits for it (SIGKILL after a
// minute).
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("%s did not stop on SIGTERM", d.name)
	}
	if !d.cmd.ProcessState.Success() {
		return fmt.Errorf("%s exited with %v (see %s)", d.name,
			d.cmd.ProcessState, d.log)
	}
	return nil
}

// kill SIGKILLs the daemon, if it runs.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
}

// alive reports whether the process still runs.
func (d *daemon) alive() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// do calls the API with the admin token and decodes the JSON answer; it
// returns the HTTP status, 0 when the call failed.
func (d *daemon) do(ctx context.Context, method, path string, body,
	out any) int {

	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method,
		"https://"+d.apiAddr+path, rd)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
	return resp.StatusCode
}

// sample is one measurement of a daemon process.
type sample struct {
	at         time.Duration
	rssKiB     uint64
	threads    uint64
	goroutines uint64
}

// sample reads the process's resident set and threads from
// /proc/<pid>/status and its goroutines from go_goroutines on /metrics.
func (d *daemon) sample(ctx context.Context, at time.Duration) (sample,
	error) {

	s := sample{at: at}
	if !d.alive() {
		return s, fmt.Errorf("%s is not running (see %s)", d.name, d.log)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rssKiB = n
		case "Threads":
			s.threads = n
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET",
		"http://"+d.metrics+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("%s metrics: %w", d.name, err)
	}
	defer resp.Body.Close()
	sc = bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			g, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return s, err
			}
			s.goroutines = uint64(g)
			return s, nil
		}
	}
	return s, fmt.Errorf("%s exports no go_goroutines on /metrics",
		d.name)
}
