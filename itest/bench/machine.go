package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run happened, so figures are never compared
// across machines without knowing it.
type Machine struct {
	CPU       string
	Cores     int
	MemTotal  string
	Disk      string
	Kernel    string
	GoVersion string
	Lnd       string
	LoadStart string
	LoadEnd   string
}

// loadAvg returns /proc/loadavg's three averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// load1 is the one-minute load average.
func load1() float64 {
	v, _ := strconv.ParseFloat(strings.Fields(loadAvg() + " 0")[0], 64)
	return v
}

func describeMachine(ctx context.Context, dir, lndBin string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		LoadStart: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok &&
				strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", kb/1024/1024)
			}
		}
	}
	run := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(out))
	}
	if lines := strings.Split(run("df", "-hT", dir), "\n"); len(lines) > 1 {
		f := strings.Fields(lines[1])
		if len(f) >= 3 {
			m.Disk = fmt.Sprintf("%s, %s (%s)", f[1], f[2], f[0])
		}
	}
	m.Kernel = run("uname", "-r")
	m.Lnd = run(lndBin, "--version")
	return m
}
