// Command noderoll upgrades Kubernetes worker node groups.
package main

import (
	"os"
	// Maintenance windows name IANA time zones; a container image without
	// a zoneinfo database still knows them.
	_ "time/tzdata"

	"github.com/noderoll/noderoll/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
