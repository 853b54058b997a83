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

// A flag given to a command that only groups others is refused naming the
// commands it goes after; a flag a real command lacks is refused as cobra
// says it, and nothing runs either way.
func TestAFlagBeforeTheCommandSaysWhereItGoes(t *testing.T) {
	run := func(args ...string) error {
		root := NewRoot(Streams{Out: io.Discard, Err: io.Discard})
		root.SetArgs(args)
		return root.Execute()
	}
	err := run("watch", "--cluster=eksworkshop-eksctl", "--name=nodegroup")
	if err == nil || !strings.Contains(err.Error(), "unknown flag: --cluster") ||
		!strings.Contains(err.Error(), "noderoll watch needs what it acts on first, and the flags after it: noderoll watch nodegroup or noderoll watch nodegroupupgrade") {
		t.Errorf("watch with the group's flags first: %v", err)
	}
	if err := run("plan", "--cluster=x"); err == nil || !strings.Contains(err.Error(), "noderoll plan nodegroup") {
		t.Errorf("plan with the group's flags first: %v", err)
	}
	if err := run("version", "--cluster=x"); err == nil || err.Error() != "unknown flag: --cluster" {
		t.Errorf("a runnable command's unknown flag: %v", err)
	}
}
