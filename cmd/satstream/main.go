// Command satstream is the command-line front door to satstream's daemons.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		fmt.Fprintln(os.Stderr, "satstream demo: not yet; the demo "+
			"lands with the CLI issue. Run `bash itest/run.sh` to "+
			"see a real regtest network at work.")
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "usage: satstream demo")
	os.Exit(2)
}
