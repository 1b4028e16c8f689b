package regtest

import (
	"fmt"
	"net"
	"sync"
)

var (
	portsMu sync.Mutex
	handed  = map[int]bool{}
)

// freePort returns a loopback TCP port that is free now and has not been
// handed out before by this process.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()

	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handed[port] {
			handed[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port after 100 tries")
}

func loopback(port int) string {
	return fmt.Sprintf("127.0.0.1:%d", port)
}
