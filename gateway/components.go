package main

import (
	"github.com/gin-gonic/gin"
	gcb "github.com/krakend/krakend-circuitbreaker/v2/gobreaker"
	cbproxy "github.com/krakend/krakend-circuitbreaker/v2/gobreaker/proxy"
	otellura "github.com/krakend/krakend-otel/lura"
	otelgin "github.com/krakend/krakend-otel/router/gin"
	ratelimitproxy "github.com/krakend/krakend-ratelimit/v3/proxy"
	ratelimitrouter "github.com/krakend/krakend-ratelimit/v3/router/gin"
	"github.com/luraproject/lura/v2/config"
	"github.com/luraproject/lura/v2/logging"
	"github.com/luraproject/lura/v2/proxy"
	proxyplugin "github.com/luraproject/lura/v2/proxy/plugin"
	"github.com/luraproject/lura/v2/router"
	luragin "github.com/luraproject/lura/v2/router/gin"
	"github.com/luraproject/lura/v2/transport/http/client"
	"github.com/luraproject/lura/v2/transport/http/client/graphql"
	clientplugin "github.com/luraproject/lura/v2/transport/http/client/plugin"
	serverhttp "github.com/luraproject/lura/v2/transport/http/server"
	serverplugin "github.com/luraproject/lura/v2/transport/http/server/plugin"
)

// Extra-config namespaces whose components are wired into this binary.
// Namespaces read natively by the components (no alias needed):
//   - qos/ratelimit/router        (krakend-ratelimit/v3 router, endpoint level)
//   - qos/ratelimit/proxy         (krakend-ratelimit/v3 proxy, backend level)
//   - telemetry/opentelemetry     (krakend-otel, service/endpoint/backend level)
//   - backend/http/client         (lura, backend level)
//
// aliases maps the documented v2 names onto the legacy keys that the components
// below still read (the same mapping KrakenD CE registers in its main package).
// Only components present in this binary are listed; in particular the CE alias
// "qos/ratelimit/router" -> legacy juju key is NOT registered because
// krakend-ratelimit/v3 reads "qos/ratelimit/router" itself.
var aliases = map[string]string{
	gcb.Namespace:          "qos/circuit-breaker",
	luragin.Namespace:      "router",
	proxy.Namespace:        "proxy",
	client.Namespace:       "backend/http",
	graphql.Namespace:      "backend/graphql",
	clientplugin.Namespace: "plugin/http-client",
	serverplugin.Namespace: "plugin/http-server",
	proxyplugin.Namespace:  "plugin/req-resp-modifier",
}

func registerAliases() {
	for key, alias := range aliases {
		config.ExtraConfigAlias[alias] = key
	}
}

// newBackendFactory builds the backend (per upstream host list) pipe:
// HTTP client (+ OpenTelemetry instrumentation) -> HTTP proxy (honours
// "encoding": "no-op") -> qos/ratelimit/proxy -> qos/circuit-breaker ->
// OpenTelemetry backend stage. Load balancing over the host list is added
// outside of this pipe by lura's proxy factory (sd.NewBalancer).
func newBackendFactory(logger logging.Logger) proxy.BackendFactory {
	bf := func(remote *config.Backend) proxy.Proxy {
		cf := otellura.InstrumentedHTTPClientFactory(client.NewHTTPClient, remote)
		return proxy.NewHTTPProxyWithHTTPExecutor(remote, client.DefaultHTTPRequestExecutor(cf), remote.Decoder)
	}
	var backendFactory proxy.BackendFactory = bf
	backendFactory = ratelimitproxy.BackendFactory(logger, backendFactory)
	backendFactory = cbproxy.BackendFactory(backendFactory, logger)
	backendFactory = otellura.BackendFactory(backendFactory)
	return backendFactory
}

// newProxyFactory builds the endpoint pipe: lura's default factory (load balancer
// over the backend's host list, request builder, header/query filters, merger,
// static and plugin middlewares), the shadow-backend factory and the
// OpenTelemetry proxy stage.
func newProxyFactory(logger logging.Logger, bf proxy.BackendFactory) proxy.Factory {
	pf := proxy.NewDefaultFactory(bf, logger)
	pf = proxy.NewShadowFactory(pf)
	return otellura.ProxyFactory(pf)
}

// newHandlerFactory builds the gin endpoint handler: lura's endpoint handler
// (renders "output_encoding", including no-op), wrapped by the
// qos/ratelimit/router limiter and the OpenTelemetry router stage.
func newHandlerFactory(logger logging.Logger) luragin.HandlerFactory {
	hf := luragin.CustomErrorEndpointHandler(logger, serverhttp.DefaultToHTTPError)
	hf = ratelimitrouter.NewRateLimiterMw(logger, hf)
	return otelgin.New(hf)
}

// newRouterFactory assembles the gin router. The engine comes from lura
// (it registers GET /__health unless the router options disable it).
func newRouterFactory(cfg config.ServiceConfig, logger logging.Logger, runServer luragin.RunServerFunc) router.Factory {
	health := make(chan string, len(cfg.AsyncAgents)+1)
	engine := luragin.NewEngine(cfg, luragin.EngineOptions{
		Logger: logger,
		Health: health,
	})
	return luragin.NewFactory(luragin.Config{
		Engine:         engine,
		ProxyFactory:   newProxyFactory(logger, newBackendFactory(logger)),
		Middlewares:    []gin.HandlerFunc{},
		Logger:         logger,
		HandlerFactory: newHandlerFactory(logger),
		RunServer:      runServer,
	})
}
