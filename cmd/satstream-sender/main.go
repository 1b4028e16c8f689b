// Command satstream-sender is the payer's daemon: it keeps subscriptions
// paid by streaming keysend payments through the payer's lnd.
package main

import (
	"fmt"
	"os"

	"github.com/satstream/satstream/sender"
)

func main() {
	if err := sender.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "satstream-sender:", err)
		os.Exit(1)
	}
}
