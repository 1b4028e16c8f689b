// Command satstream is the command line of satstream's two daemons, in the
// style of lncli and loop: `satstream receiver ...` talks to the provider's
// satstream-receiver, `satstream sender ...` to the payer's
// satstream-sender, and `satstream demo` runs both on a local regtest
// network.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "[satstream]", err)
		os.Exit(1)
	}
}
