package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	kotel "github.com/krakend/krakend-otel"
	otellura "github.com/krakend/krakend-otel/lura"
	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/core"
	"github.com/luraproject/lura/v2/logging"
	serverhttp "github.com/luraproject/lura/v2/transport/http/server"
	"github.com/spf13/cobra"
)

// errReported marks an error whose message was already printed.
var errReported = errors.New("reported")

func parseConfig() (config.ServiceConfig, error) {
	if cfgFile == "" {
		return config.ServiceConfig{}, errors.New("please, provide the path to the configuration file with --config (-c)")
	}
	return config.NewParser().Parse(cfgFile)
}

func runServe(ctx context.Context, cmd *cobra.Command) error {
	cfg, err := parseConfig()
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "ERROR parsing the configuration file: %s\n", err)
		return errReported
	}
	cfg.Debug = cfg.Debug || debug
	if portOverride != 0 {
		cfg.Port = portOverride
	}
	ignored := ignoredNamespaces(cfg)
	cfg.Normalize()

	logger, err := newLogger(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "ERROR creating the logger: %s\n", err)
		return errReported
	}
	logger.Info(fmt.Sprintf("Starting KrakenD v%s", core.KrakendVersion))
	for _, n := range ignored {
		logger.Warning("[SERVICE: Config] extra_config namespace not handled by this build, ignored:", n)
	}

	// krakend-otel reads its global state when the factories are built, so it must be
	// registered before them. Without a telemetry/opentelemetry section it is a no-op.
	shutdownOtel, err := kotel.Register(ctx, logger, cfg)
	if err != nil {
		logger.Error("[SERVICE: OpenTelemetry] cannot register exporters:", err.Error())
	} else {
		defer shutdownOtel()
	}

	var (
		mu       sync.Mutex
		serveErr error
	)
	listen := serverhttp.RunServerWithLoggerFactory(logger)
	runServer := otellura.GlobalRunServer(logger, func(ctx context.Context, c config.ServiceConfig, h http.Handler) error {
		err := listen(ctx, c, h)
		mu.Lock()
		serveErr = err
		mu.Unlock()
		return err
	})

	newRouterFactory(cfg, logger, runServer).NewWithContext(ctx).Run(cfg)

	mu.Lock()
	defer mu.Unlock()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && ctx.Err() == nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "ERROR running the service: %s\n", serveErr)
		return errReported
	}
	return nil
}

// newLogger honours the "level" and "prefix" of a telemetry/logging section
// (KrakenD CE's gologging component; its syslog/format options are not supported).
// Without it, it logs at DEBUG to stdout with the KRAKEND prefix, as KrakenD CE does.
func newLogger(cfg config.ServiceConfig, out io.Writer) (logging.Logger, error) {
	level, prefix := "DEBUG", "[KRAKEND]"
	if v, ok := cfg.ExtraConfig["telemetry/logging"].(map[string]interface{}); ok {
		if l, ok := v["level"].(string); ok && l != "" {
			level = strings.ToUpper(l)
		}
		if p, ok := v["prefix"].(string); ok && p != "" {
			prefix = p
		}
	}
	return logging.NewLogger(level, out, prefix)
}
