// Command nicpersist renders boot-persistent multi-NIC routing from a profile.
package main

import (
	"os"

	"github.com/nicpersist/nicpersist/render/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
