// Command noderoll upgrades Kubernetes worker node groups.
package main

import (
	"os"

	"github.com/noderoll/noderoll/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
