// Command krakend is release-infra's build of a KrakenD-compatible API gateway.
//
// It wires the public KrakenD/Lura library modules that the Go module proxy serves
// (lura, krakend-circuitbreaker, krakend-ratelimit, krakend-otel) into a small
// binary with the two CLI verbs our tests and deployments rely on:
//
//	krakend check -c FILE   parse and validate a configuration, exit non-zero on error
//	krakend run   -c FILE   serve a configuration (honours its "port")
//
// Only the components listed in components.go are active; any other extra_config
// namespace in a configuration is carried but ignored, as KrakenD CE does for
// namespaces of components it does not ship.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/luraproject/lura/v2/core"
	"github.com/spf13/cobra"
)

// luraVersion is the pinned github.com/luraproject/lura/v2 version (see go.mod).
const luraVersion = "2.13.0"

// buildFlavour tells this binary apart from an upstream KrakenD CE release.
const buildFlavour = "release-infra"

var (
	cfgFile       string
	debug         bool
	portOverride  int
	testGinRoutes bool
)

func init() {
	// KrakenD CE sets these through -ldflags at release time; the header values are
	// computed at package init, so they are set again here.
	core.KrakendVersion = luraVersion + "-" + buildFlavour
	core.KrakendHeaderValue = "Version " + core.KrakendVersion
	core.KrakendUserAgent = "KrakenD Version " + core.KrakendVersion
}

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	registerAliases()

	if err := newRootCmd(ctx).Execute(); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "ERROR:", err)
		}
		cancel()
		os.Exit(1)
	}
}

func newRootCmd(ctx context.Context) *cobra.Command {
	root := &cobra.Command{
		Use:           "krakend",
		Short:         "KrakenD-compatible API gateway (release-infra build on Lura v" + luraVersion + ")",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVarP(&cfgFile, "config", "c", "", "Path to the configuration file")
	root.PersistentFlags().BoolVarP(&debug, "debug", "d", false, "Enable the debug endpoint and debug logging")

	check := &cobra.Command{
		Use:     "check",
		Aliases: []string{"validate"},
		Short:   "Validates that the configuration file is valid to run the service",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd)
		},
	}
	check.Flags().BoolVarP(&testGinRoutes, "test-gin-routes", "t", false,
		"Accepted for compatibility with KrakenD CE: the router dry-run it asks for is always performed")

	run := &cobra.Command{
		Use:   "run",
		Short: "Runs the API gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(ctx, cmd)
		},
	}
	run.Flags().IntVarP(&portOverride, "port", "p", 0, "Listening port for the http service (overrides the config)")

	version := &cobra.Command{
		Use:   "version",
		Short: "Shows the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "KrakenD Version: %s\nGo Version: %s\n", core.KrakendVersion, core.GoVersion)
		},
	}

	root.AddCommand(check, run, version)
	return root
}
