// Command satstream-receiver credits satstream keysend payments arriving at
// the provider's lnd as paid service time. See docs/api-receiver.md.
package main

import (
	"fmt"
	"os"

	"github.com/satstream/satstream/receiver"
)

func main() {
	if err := receiver.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "satstream-receiver:", err)
		os.Exit(1)
	}
}
