package cli

import "github.com/spf13/cobra"

func newDemoCmd(s Streams) *cobra.Command { return &cobra.Command{Use: "demo", Hidden: true} }
