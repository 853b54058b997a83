package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command a user can reach teaches by example: --help of each shows
// at least one, and one that runs that very command.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := NewRoot(Streams{Out: io.Discard, Err: io.Discard})
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			if strings.TrimSpace(sub.Example) == "" {
				t.Errorf("%q has no example", sub.CommandPath())
			}
			if !strings.Contains(sub.Example, sub.CommandPath()) {
				t.Errorf("%q: no example runs it:\n%s", sub.CommandPath(), sub.Example)
			}
			walk(sub)
		}
	}
	walk(root)
}
