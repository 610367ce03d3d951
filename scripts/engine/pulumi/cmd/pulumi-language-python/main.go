// Command pulumi-language-python is release-infra's Python language host for
// the Pulumi engine.
//
// Why this exists: upstream's language host lives in the Go module
// github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3, which is
// not served by the Go module proxy this project can reach (and GitHub
// releases / get.pulumi.com are unreachable). Everything it needs to run a
// program does ship in the pinned github.com/pulumi/pulumi/sdk/v3 module,
// though: the `pulumi-language-python-exec` shim (python/cmd/), the Python
// toolchain handling (python/toolchain: pip, poetry, uv, virtualenvs) and the
// gRPC protocol (proto/go). This host wires those together and implements the
// parts of the LanguageRuntime service that `pulumi preview/up/destroy/
// refresh/install/about` use. Code generation (GeneratePackage, GenerateProgram,
// `pulumi convert`, `pulumi import --generate-code`), Link, Pack and
// RunPlugin (Python component providers / policy packs) are NOT implemented
// and answer Unimplemented.
//
// The engine starts it as `pulumi-language-python [flags] <engine-address>`
// and reads the port of its gRPC server from the first line of stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

const (
	// The exec shim is looked up next to this binary, as upstream does.
	execSuffix = "-exec"
	// Exit code used by the exec shim after it already showed an actionable error.
	exitCodeUserActionable = 32
)

func main() {
	// Flags the engine may pass (see sdk/go/common/resource/plugin buildPluginArguments).
	// Some dependencies (glog-style) already register -v / -logtostderr on the
	// default FlagSet; only define what is missing. logging.InitLogging reads
	// -v and -logtostderr from the FlagSet itself.
	defineString("tracing", "Emit tracing to a Zipkin-compatible tracing endpoint")
	defineBool("logtostderr", "Log to stderr instead of to files")
	defineString("v", "Enable verbose logging (e.g., v=3); anything >3 is very verbose")
	defineBool("logflow", "Flow logging settings to child processes")
	defineString("root", "Project root path (accepted for compatibility)")
	defineString("use-executor", "Use this program as the exec shim instead of the one next to this binary")
	flag.Parse()
	tracing := flag.Lookup("tracing").Value.String()

	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", tracing)

	execPath, err := findExecShim(flag.Lookup("use-executor").Value.String())
	if err != nil {
		cmdutil.Exit(err)
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	host := &pythonHost{exec: execPath, engineAddress: engineAddress, tracing: tracing}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}

	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

func defineString(name, usage string) {
	if flag.Lookup(name) == nil {
		flag.String(name, "", usage)
	}
}

func defineBool(name, usage string) {
	if flag.Lookup(name) == nil {
		flag.Bool(name, false, usage)
	}
}

func findExecShim(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	bin := strings.TrimSuffix(self, filepath.Ext(self)) + execSuffix
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// Fall back to $PATH, like upstream.
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), filepath.Ext(os.Args[0])) + execSuffix
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("could not find %q next to %q or on $PATH: %w", name, self, err)
	}
	return p, nil
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	exec          string
	engineAddress string
	tracing       string
}

// runtimeOptions mirrors the `runtime.options` block of Pulumi.yaml.
type runtimeOptions struct {
	toolchain   string // pip (default), poetry, uv
	virtualenv  string
	typechecker string // "", mypy, pyright
}

func parseOptions(info *pulumirpc.ProgramInfo) (runtimeOptions, error) {
	var o runtimeOptions
	if info == nil || info.GetOptions() == nil {
		return o, nil
	}
	m := info.GetOptions().AsMap()
	str := func(k string) (string, error) {
		v, ok := m[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("runtime option %q must be a string, got %T", k, v)
		}
		return s, nil
	}
	var err error
	if o.toolchain, err = str("toolchain"); err != nil {
		return o, err
	}
	if o.virtualenv, err = str("virtualenv"); err != nil {
		return o, err
	}
	if o.typechecker, err = str("typechecker"); err != nil {
		return o, err
	}
	return o, nil
}

func resolveToolchain(info *pulumiProgram) (toolchain.Toolchain, runtimeOptions, error) {
	o, err := parseOptions(info.info)
	if err != nil {
		return nil, o, err
	}
	opts := toolchain.PythonOptions{
		Root:       info.root(),
		ProgramDir: info.programDir(),
		Virtualenv: o.virtualenv,
	}
	switch strings.ToLower(o.toolchain) {
	case "", "pip":
		opts.Toolchain = toolchain.Pip
		if o.toolchain == "" {
			// Upstream default: auto-detect uv.lock / poetry.lock, else pip.
			opts.Toolchain = toolchain.Auto
		}
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return nil, o, fmt.Errorf("unsupported python toolchain %q (want pip, poetry or uv)", o.toolchain)
	}
	switch strings.ToLower(o.typechecker) {
	case "":
		opts.Typechecker = toolchain.TypeCheckerNone
	case "mypy":
		opts.Typechecker = toolchain.TypeCheckerMypy
	case "pyright":
		opts.Typechecker = toolchain.TypeCheckerPyright
	default:
		return nil, o, fmt.Errorf("unsupported python typechecker %q (want mypy or pyright)", o.typechecker)
	}
	tc, err := toolchain.ResolveToolchain(opts)
	return tc, o, err
}

// pulumiProgram wraps ProgramInfo with fallbacks for older engines.
type pulumiProgram struct {
	info *pulumirpc.ProgramInfo
	pwd  string
}

func (p *pulumiProgram) root() string {
	if r := p.info.GetRootDirectory(); r != "" {
		return r
	}
	return p.programDir()
}

func (p *pulumiProgram) programDir() string {
	if d := p.info.GetProgramDirectory(); d != "" {
		return d
	}
	if p.pwd != "" {
		return p.pwd
	}
	wd, _ := os.Getwd()
	return wd
}

func (h *pythonHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// pluginScan lists the Pulumi resource plugins declared by installed Python
// distributions through their pulumi-plugin.json files.
const pluginScan = `
import json, sys
try:
    import importlib.metadata as md
except ImportError:
    print("[]"); sys.exit(0)
out = []
for d in md.distributions():
    for f in (d.files or []):
        if f.name != "pulumi-plugin.json":
            continue
        try:
            with open(d.locate_file(f)) as fh:
                data = json.load(fh)
        except Exception:
            continue
        data["_dist"] = d.metadata.get("Name") or ""
        data["_dist_version"] = d.version or ""
        out.append(data)
print(json.dumps(out))
`

type pluginJSON struct {
	Resource         bool   `json:"resource"`
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   []byte `json:"value"` // base64 in JSON
	} `json:"parameterization"`
	Dist        string `json:"_dist"`
	DistVersion string `json:"_dist_version"`
}

func (h *pythonHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	prog := &pulumiProgram{info: req.GetInfo()}
	tc, _, err := resolveToolchain(prog)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", pluginScan)
	if err != nil {
		return nil, err
	}
	cmd.Dir = prog.programDir()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing pulumi-plugin.json of installed Python packages: %w: %s", err, stderr.String())
	}
	var plugins []pluginJSON
	if err := json.Unmarshal(out, &plugins); err != nil {
		return nil, fmt.Errorf("parsing installed Python package plugin list: %w", err)
	}
	seen := map[string]bool{}
	var pkgs []*pulumirpc.PackageDependency
	for _, p := range plugins {
		if !p.Resource {
			continue
		}
		name := p.Name
		if name == "" {
			// Upstream convention: pulumi_foo / pulumi-foo -> foo.
			name = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(p.Dist), "pulumi-"), "pulumi_")
		}
		ver := p.Version
		if ver == "" {
			ver = p.DistVersion
		}
		if ver != "" && !strings.HasPrefix(ver, "v") {
			ver = "v" + ver
		}
		dep := &pulumirpc.PackageDependency{Name: name, Kind: "resource", Version: ver, Server: p.Server}
		if p.Parameterization != nil {
			pv := p.Parameterization.Version
			if pv != "" && !strings.HasPrefix(pv, "v") {
				pv = "v" + pv
			}
			dep.Parameterization = &pulumirpc.PackageParameterization{
				Name: p.Parameterization.Name, Version: pv, Value: p.Parameterization.Value,
			}
		}
		key := dep.Name + "@" + dep.Version
		if dep.Parameterization != nil {
			key += "/" + dep.Parameterization.Name + "@" + dep.Parameterization.Version
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		pkgs = append(pkgs, dep)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func (h *pythonHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	resp, err := h.GetRequiredPackages(ctx, &pulumirpc.GetRequiredPackagesRequest{Info: req.GetInfo()})
	if err != nil {
		return nil, err
	}
	plugins := make([]*pulumirpc.PluginDependency, 0, len(resp.GetPackages()))
	for _, p := range resp.GetPackages() {
		if p.GetParameterization() != nil {
			continue
		}
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: p.GetName(), Kind: p.GetKind(), Version: p.GetVersion(), Server: p.GetServer(),
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	prog := &pulumiProgram{info: req.GetInfo(), pwd: req.GetPwd()}
	tc, opts, err := resolveToolchain(prog)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	if opts.typechecker != "" {
		if msg := runTypechecker(ctx, tc, opts.typechecker, prog.programDir()); msg != "" {
			return &pulumirpc.RunResponse{Error: msg}, nil
		}
	}

	args := []string{h.exec}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	add("root_directory", prog.root())
	program := req.GetProgram()
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	// The SDK expects a JSON object and a JSON list, never `null`.
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	secretKeyList := req.GetConfigSecretKeys()
	if secretKeyList == nil {
		secretKeyList = []string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serializing config: %w", err)
	}
	secretKeys, err := json.Marshal(secretKeyList)
	if err != nil {
		return nil, fmt.Errorf("serializing config secret keys: %w", err)
	}
	env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	// Read by the dynamic-provider shim (pulumi-resource-pulumi-python).
	if opts.toolchain != "" {
		env = append(env, "PULUMI_RUNTIME_TOOLCHAIN="+strings.ToLower(opts.toolchain))
	}
	if venv, err := tc.VirtualEnvPath(ctx); err == nil && venv != "" {
		env = append(env, "PULUMI_RUNTIME_VIRTUALENV="+venv)
	}
	cmd.Env = env
	if cmd.Dir == "" {
		cmd.Dir = prog.programDir()
	}
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	logging.V(5).Infof("Language host launching process: %s", strings.Join(cmd.Args, " "))

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeUserActionable {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func runTypechecker(ctx context.Context, tc toolchain.Toolchain, checker, dir string) string {
	module := strings.ToLower(checker)
	cmd, err := tc.ModuleCommand(ctx, module, ".")
	if err != nil {
		return err.Error()
	}
	cmd.Dir = dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("%s type checking failed: %v", module, err)
	}
	return ""
}

// streamWriter forwards output to an InstallDependencies stream.
type streamWriter struct {
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stderr bool
}

func (w *streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	resp := &pulumirpc.InstallDependenciesResponse{Stdout: b}
	if w.stderr {
		resp = &pulumirpc.InstallDependenciesResponse{Stderr: b}
	}
	if err := w.send(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*streamWriter)(nil)

func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	prog := &pulumiProgram{info: req.GetInfo(), pwd: req.GetDirectory()}
	tc, _, err := resolveToolchain(prog)
	if err != nil {
		return err
	}
	stdout := &streamWriter{send: server.Send}
	stderr := &streamWriter{send: server.Send, stderr: true}
	dir := req.GetDirectory()
	if dir == "" {
		dir = prog.programDir()
	}
	return tc.InstallDependencies(server.Context(), dir, req.GetUseLanguageVersionTools(),
		true /*showOutput*/, stdout, stderr)
}

func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, o, err := resolveToolchain(&pulumiProgram{info: req.GetInfo()})
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	md := map[string]string{"toolchain": o.toolchain}
	if o.toolchain == "" {
		md["toolchain"] = "auto"
	}
	if v := info.ToolchainVersion.String(); v != "0.0.0" {
		md["toolchainVersion"] = v
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   md,
	}, nil
}

func (h *pythonHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, _, err := resolveToolchain(&pulumiProgram{info: req.GetInfo(), pwd: req.GetPwd()})
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	out := make([]*pulumirpc.DependencyInfo, 0, len(deps))
	for _, d := range deps {
		out = append(out, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: out}, nil
}

func (h *pythonHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *pythonHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
