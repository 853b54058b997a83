package cli

import (
	"io"
	"log/slog"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// libraryLogsAnnotation on a command asks for controller-runtime's
// informational lines too (the controller's leader election, say), not
// only its errors.
const libraryLogsAnnotation = "noderoll.io/library-logs"

// routeLibraryLogs sends controller-runtime's log lines to the CLI's
// stderr, as the CLI's own logger writes them, at libraryLogLevel. A
// process that never sets controller-runtime's logger gets, 30 s in and
// at the library's first line, a warning and a goroutine dump that a user
// can do nothing with. controller-runtime takes the first logger a process
// sets and ignores the rest, so this is the one place that sets it.
func routeLibraryLogs(w io.Writer, cmd *cobra.Command) {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: libraryLogLevel(cmd)})
	ctrllog.SetLogger(logr.FromSlogHandler(h))
}

// libraryLogLevel is everything with -v; without, errors only, or also
// informational lines for a command that asks for them.
func libraryLogLevel(cmd *cobra.Command) slog.Level {
	if f := cmd.Flags().Lookup("verbose"); f != nil && f.Value.String() == "true" {
		return slog.LevelDebug
	}
	if cmd.Annotations[libraryLogsAnnotation] == "info" {
		return slog.LevelInfo
	}
	return slog.LevelError
}
