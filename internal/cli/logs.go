package cli

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/noderoll/noderoll/internal/clientcfg"
	"github.com/noderoll/noderoll/internal/controllercmd"
)

// libraryLogsAnnotation on a command asks for controller-runtime's
// informational lines too (the controller's leader election, say), not
// only its errors.
const libraryLogsAnnotation = controllercmd.LibraryLogsAnnotation

// routeLibraryLogs sends controller-runtime's log lines to the CLI's
// stderr at libraryLogLevel (clientcfg.RouteLibraryLogs); the root command
// is the one place that calls it.
func routeLibraryLogs(w io.Writer, cmd *cobra.Command) {
	clientcfg.RouteLibraryLogs(w, libraryLogLevel(cmd))
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
