package cli

import "github.com/spf13/cobra"

func newUpgradeCmd(s Streams) *cobra.Command { return &cobra.Command{Use: "upgrade", Hidden: true} }
func newDemoCmd(s Streams) *cobra.Command    { return &cobra.Command{Use: "demo", Hidden: true} }
