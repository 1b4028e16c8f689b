package regtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// live holds every process this package started and has not yet seen exit,
// so a test run can prove it leaked none.
var live sync.Map // pid -> *process

// LiveProcesses returns a description of each child process still running.
// Test mains call it after the last test to fail on leaks.
func LiveProcesses() []string {
	var out []string
	live.Range(func(_, v any) bool {
		p := v.(*process)
		out = append(out, fmt.Sprintf("%s (pid %d)", p.name,
			p.cmd.Process.Pid))
		return true
	})
	return out
}

// process is one child we started, with its output going to a log file.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// startProcess starts bin with args, output appended to logPath. The child
// gets its own process group and SIGKILL if our process dies, so even a
// crashed test binary leaves nothing running.
func startProcess(name, bin string, args []string, logPath string) (*process,
	error) {

	logFile, err := os.OpenFile(
		logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644,
	)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", name, err)
	}
	fmt.Fprintf(logFile, "=== %s: %s %q\n",
		time.Now().Format(time.RFC3339Nano), bin, args)

	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}

	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	live.Store(cmd.Process.Pid, p)
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		live.Delete(cmd.Process.Pid)
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process (by its PID only) and waits for it.
func (p *process) kill() error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil &&
		!errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.exited
	return nil
}

// stop asks the process to shut down with SIGTERM and kills it if it has
// not exited within timeout.
func (p *process) stop(timeout time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		_ = p.kill()
		return fmt.Errorf("%s did not stop within %v after SIGTERM; "+
			"killed", p.name, timeout)
	}
}
