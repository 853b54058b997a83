// Package cli is noderoll's command line: thin cobra commands over the
// engine, the cloud providers and the sandbox.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/noderoll/noderoll/internal/clientcfg"
	"github.com/noderoll/noderoll/internal/controllercmd"
	"github.com/noderoll/noderoll/internal/profiles"
)

// Streams are where commands read and write, injected for tests.
type Streams struct {
	Out, Err io.Writer
}

// NewRoot returns the noderoll command tree.
func NewRoot(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "noderoll",
		Short: "Upgrade Kubernetes worker node groups safely, fast and visibly",
		Long: `noderoll replaces the nodes of a node group (an EKS managed node group or a
self-managed Auto Scaling group) with nodes on a new AMI: it surges new nodes
first, drains old ones through the Eviction API within your PodDisruptionBudgets,
and shows every node come and go. Its progress lives in the cluster, so a rerun
picks up where a stopped one left off.

Try it without an AWS account:
  noderoll demo                      # local sandbox + the seed's upgrade, live

Or step by step:
  noderoll sandbox up                # a real control plane + local AWS endpoint
  eval "$(noderoll sandbox env)"     # point kubectl and the AWS SDK at it
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			routeLibraryLogs(s.Err, cmd)
		},
	}
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(flagBeforeCommand)
	root.AddCommand(newSandboxCmd(s), newUpgradeCmd(s), newDemoCmd(s), newBenchCmd(s), newPermissionsCmd(s), controllercmd.New(s.Err), newVersionCmd(s), newPlanCmd(s), newWatchCmd(s), newReportCmd(s))
	addCompletion(root)
	return root
}

// flagBeforeCommand says, when a flag is given to a command that only
// groups others (`noderoll watch --cluster=...`), that the flags go after
// the command that acts: cobra alone says only that the flag is unknown.
func flagBeforeCommand(c *cobra.Command, err error) error {
	if c.Runnable() || !c.HasAvailableSubCommands() {
		return err
	}
	var subs []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			subs = append(subs, c.CommandPath()+" "+sub.Name())
		}
	}
	return fmt.Errorf("%w: %s needs what it acts on first, and the flags after it: %s (see %s --help)", err, c.CommandPath(), strings.Join(subs, " or "), c.CommandPath())
}

// addCompletion adds cobra's completion command with an example on each
// shell's.
func addCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	setup := map[string]string{
		"bash":       "  source <(noderoll completion bash)                         # this shell\n  noderoll completion bash > /etc/bash_completion.d/noderoll  # every shell",
		"zsh":        "  noderoll completion zsh > \"${fpath[1]}/_noderoll\"   # then start a new shell",
		"fish":       "  noderoll completion fish > ~/.config/fish/completions/noderoll.fish",
		"powershell": "  noderoll completion powershell | Out-String | Invoke-Expression",
	}
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = "  noderoll completion bash > /etc/bash_completion.d/noderoll\n  noderoll completion zsh --help"
		for _, sh := range c.Commands() {
			sh.Example = setup[sh.Name()]
		}
	}
}

// completeWith completes a flag's value with these choices ("value\thelp")
// and never with file names.
func completeWith(cmd *cobra.Command, flag string, choices ...string) {
	_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
}

// PluginName is the name kubectl runs noderoll by as a plugin: an
// executable named kubectl-noderoll on the PATH is `kubectl noderoll`.
const PluginName = "kubectl-noderoll"

// completionName is the executable kubectl (1.26 and later) runs to
// complete `kubectl noderoll ...`: a link to the binary under this name.
const completionName = "kubectl_complete-noderoll"

// asPlugin makes the command tree speak as `kubectl noderoll`: its usage
// lines, help and examples.
func asPlugin(root *cobra.Command) {
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl noderoll"
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Example = pluginCommand.ReplaceAllString(c.Example, "${1}kubectl noderoll ")
		c.Long = pluginCommand.ReplaceAllString(c.Long, "${1}kubectl noderoll ")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// pluginCommand finds noderoll run as a command: at a line's start, after
// a space, a "$(" or a pipe.
var pluginCommand = regexp.MustCompile(`(^|[\s(|;])noderoll `)

// Execute runs the command line and returns the process exit code. The last
// line on failure is the one-line cause.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := Streams{Out: os.Stdout, Err: os.Stderr}
	defer profiles.FromEnv(ctx)()
	root := NewRoot(s)
	switch filepath.Base(os.Args[0]) {
	case PluginName:
		asPlugin(root)
	case completionName:
		// kubectl completes a plugin's arguments by running this name
		// with them: cobra's own completion request.
		asPlugin(root)
		root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, os.Args[1:]...))
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(s.Err, "Error: %v\n", err)
	return 1
}

func newLogger(w io.Writer, verbose bool) *slog.Logger { return clientcfg.NewLogger(w, verbose) }
