package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	otelconfig "github.com/krakend/krakend-otel/config"
	"github.com/luraproject/lura/v2/config"
	"github.com/spf13/cobra"
)

// handledNamespaces lists, per level, the extra_config namespaces (v2 names, as
// written in configurations) that a component of this binary reads.
var handledNamespaces = map[string]map[string]bool{
	"service": {
		"telemetry/opentelemetry": true,
		"telemetry/logging":       true, // level and prefix only
		"router":                  true,
	},
	"endpoint": {
		"qos/ratelimit/router":    true,
		"telemetry/opentelemetry": true,
		"proxy":                   true, // sequential, static, flatmap (lura)
	},
	"backend": {
		"qos/circuit-breaker":     true,
		"qos/ratelimit/proxy":     true,
		"telemetry/opentelemetry": true,
		"backend/http":            true,
		"backend/http/client":     true,
		"backend/graphql":         true,
		"proxy":                   true, // shadow, flatmap (lura)
	},
}

// ignoredNamespaces returns the extra_config namespaces of cfg that no component of
// this binary reads (they are carried and ignored, as KrakenD CE ignores unknown
// namespaces). It must be called before cfg.Normalize().
func ignoredNamespaces(cfg config.ServiceConfig) []string {
	seen := map[string]bool{}
	legacy := map[string]string{}
	for key, alias := range aliases {
		legacy[key] = alias
	}
	note := func(level string, extra config.ExtraConfig) {
		for ns := range extra {
			name := ns
			if alias, ok := legacy[ns]; ok {
				name = alias
			}
			if !handledNamespaces[level][name] {
				seen[level+": "+ns] = true
			}
		}
	}
	note("service", cfg.ExtraConfig)
	for _, e := range cfg.Endpoints {
		note("endpoint", e.ExtraConfig)
		for _, b := range e.Backend {
			note("backend", b.ExtraConfig)
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validate reports problems lura's parser accepts but the router cannot serve.
func validate(cfg config.ServiceConfig) []error {
	var errs []error
	routes := map[string]int{}
	for i, e := range cfg.Endpoints {
		key := strings.ToUpper(e.Method) + " " + e.Endpoint
		if first, ok := routes[key]; ok {
			errs = append(errs, fmt.Errorf("endpoints[%d] %s duplicates endpoints[%d]", i, key, first))
			continue
		}
		routes[key] = i
		if len(e.Backend) == 0 {
			errs = append(errs, fmt.Errorf("endpoints[%d] %s has no backend", i, key))
		}
	}
	otelCfg, err := otelconfig.FromLura(cfg)
	switch {
	case errors.Is(err, otelconfig.ErrNoConfig):
	case err != nil:
		errs = append(errs, fmt.Errorf("telemetry/opentelemetry: %w", err))
	default:
		if err := otelCfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("telemetry/opentelemetry: %w", err))
		}
	}
	return errs
}

// dryRunRouter builds the whole router (engine, handlers, proxy and backend pipes)
// exactly as `run` does, but never listens. It fails on a panic (e.g. gin route
// conflicts) or on any error logged while building the pipes. OpenTelemetry
// exporters are not started.
func dryRunRouter(cfg config.ServiceConfig) (err error) {
	rec := &recordingLogger{}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building the router: %v", r)
		}
	}()
	noListen := func(context.Context, config.ServiceConfig, http.Handler) error { return nil }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newRouterFactory(cfg, rec, noListen).NewWithContext(ctx).Run(cfg)
	if msgs := rec.errors(); len(msgs) > 0 {
		return fmt.Errorf("building the router:\n\t%s", strings.Join(msgs, "\n\t"))
	}
	return nil
}

func runCheck(cmd *cobra.Command) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if cfgFile == "" {
		fmt.Fprintln(errOut, "Please, provide the path to the configuration file with --config (-c) or see all the options with --help")
		return errReported
	}
	fmt.Fprintf(out, "Parsing configuration file: %s\n", cfgFile)

	cfg, err := parseConfig()
	if err != nil {
		fmt.Fprintf(errOut, "ERROR parsing the configuration file:\t%s\n", err)
		return errReported
	}
	if errs := validate(cfg); len(errs) > 0 {
		fmt.Fprintln(errOut, "ERROR validating the configuration file:")
		for _, e := range errs {
			fmt.Fprintf(errOut, "\t%s\n", e)
		}
		return errReported
	}
	ignored := ignoredNamespaces(cfg)
	cfg.Normalize()
	if err := dryRunRouter(cfg); err != nil {
		fmt.Fprintf(errOut, "ERROR testing the configuration file:\t%s\n", err)
		return errReported
	}
	for _, n := range ignored {
		fmt.Fprintf(out, "NOTE extra_config namespace not handled by this build, ignored: %s\n", n)
	}
	fmt.Fprintln(out, "Syntax OK!")
	return nil
}

// recordingLogger is a lura logging.Logger that keeps error-level messages.
type recordingLogger struct {
	mu   sync.Mutex
	msgs []string
}

func (l *recordingLogger) record(v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, strings.TrimSpace(fmt.Sprintln(v...)))
}

func (l *recordingLogger) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

func (*recordingLogger) Debug(...interface{})        {}
func (*recordingLogger) Info(...interface{})         {}
func (*recordingLogger) Warning(...interface{})      {}
func (l *recordingLogger) Error(v ...interface{})    { l.record(v...) }
func (l *recordingLogger) Critical(v ...interface{}) { l.record(v...) }
func (l *recordingLogger) Fatal(v ...interface{})    { l.record(v...) }
