#!/usr/bin/env bash
# Provide the pinned Pulumi engine toolchain on a machine that cannot download
# the Pulumi CLI or its plugins: everything is built from Go modules (through
# the Go module proxy, checked against the go.sum files committed under
# scripts/engine/) into a cache outside the repository, keyed by version:
#
#   ${RELEASE_INFRA_CACHE:-$HOME/.cache/release-infra}/
#     pulumi-v<PULUMI_VERSION>/bin/            pulumi, pulumi-language-python,
#                                              pulumi-language-python-exec,
#                                              pulumi-resource-pulumi-python
#     pulumi-kubernetes-v<BUILD_VERSION>/bin/  pulumi-resource-kubernetes
#     pulumi-home/                             PULUMI_HOME (plugins, file-backend login)
#
# The kubernetes plugin is then registered offline under the version the
# Python SDK asks for (PULUMI_KUBERNETES_VERSION, = PyPI pin) with
# `pulumi plugin install resource kubernetes <version> --file <binary>`.
#
# Usage:   eval "$(scripts/bootstrap-engine.sh)"
# Stdout:  only `export ...` lines (PATH, PULUMI_HOME, PULUMI_SKIP_UPDATE_CHECK,
#          PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION); progress goes to stderr.
# Idempotent: if a `pulumi` of the pinned version (with its Python language
# host) is already on PATH and the kubernetes plugin of the pinned version is
# installed in PULUMI_HOME, nothing is built or installed. Cached builds are
# reused while their stamp (versions + wrapper module files) is unchanged.
#
# Environment:
#   RELEASE_INFRA_CACHE  cache root (default: $HOME/.cache/release-infra)
#   PULUMI_HOME          respected if set; default: <cache root>/pulumi-home
#   RELEASE_INFRA_PULUMI_LOGS=keep  keep Pulumi's automatic log (see automatic_log)
#   Go >= GO_MIN_VERSION (scripts/engine/versions.env) is needed only to build.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

log() { printf '[bootstrap-engine] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ENGINE_DIR=$SCRIPT_DIR/engine

# shellcheck source=engine/versions.env
. "$ENGINE_DIR/versions.env"
: "${PULUMI_VERSION:?}" "${PULUMI_KUBERNETES_VERSION:?}" "${PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION:?}"
: "${PULUMI_KUBERNETES_BUILD_VERSION:=$PULUMI_KUBERNETES_VERSION}"
: "${GO_MIN_VERSION:=1.25}"

PULUMI_PKG_MODULE=github.com/pulumi/pulumi/pkg/v3
PULUMI_SDK_MODULE=github.com/pulumi/pulumi/sdk/v3
K8S_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4

CACHE_ROOT=${RELEASE_INFRA_CACHE:-${HOME:?}/.cache/release-infra}
PULUMI_PREFIX=$CACHE_ROOT/pulumi-v$PULUMI_VERSION
K8S_PREFIX=$CACHE_ROOT/pulumi-kubernetes-v$PULUMI_KUBERNETES_BUILD_VERSION
PULUMI_BIN_DIR=$PULUMI_PREFIX/bin
K8S_PLUGIN_BIN=$K8S_PREFIX/bin/pulumi-resource-kubernetes

export PULUMI_HOME=${PULUMI_HOME:-$CACHE_ROOT/pulumi-home}
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

PLUGIN_DIR=$PULUMI_HOME/plugins/resource-kubernetes-v$PULUMI_KUBERNETES_VERSION

START=$SECONDS

# emit_exports [BIN_DIR]: the only thing written to stdout.
emit_exports() {
  local bin_dir=${1:-}
  if [[ -n $bin_dir ]]; then
    # shellcheck disable=SC2016
    case ":$PATH:" in
      ":$bin_dir:"*) ;; # already first
      *) printf 'export PATH=%q:"${PATH}"\n' "$bin_dir" ;; # PATH expands in the caller's eval
    esac
  fi
  printf 'export PULUMI_HOME=%q\n' "$PULUMI_HOME"
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
}

# Pulumi's automatic log: the CLI writes each run's engine log at debug level to
# PULUMI_HOME/logs, compressed and encrypted, about 10 MB per `pulumi up` of a
# 20-service stack and about 30% of its time (docs/benchmarks.md). The CLI runs
# without it when that directory cannot be made, so the cache's own PULUMI_HOME
# gets `logs -> /dev/null`; `-v=9 --logtostderr` still logs on demand. A
# PULUMI_HOME of the caller's own is left as it is.
automatic_log() {
  [[ $PULUMI_HOME == "$CACHE_ROOT/pulumi-home" ]] || return 0
  local logs=$PULUMI_HOME/logs
  if [[ ${RELEASE_INFRA_PULUMI_LOGS:-} == keep ]]; then
    if [[ -L $logs ]]; then rm -f -- "$logs"; fi
  elif [[ "$(readlink -- "$logs" || true)" != /dev/null ]]; then
    mkdir -p -- "$PULUMI_HOME"
    rm -rf -- "$logs"
    ln -sfn /dev/null "$logs"
    log "Pulumi's automatic log is off in $PULUMI_HOME (RELEASE_INFRA_PULUMI_LOGS=keep keeps it)"
  fi
}

plugin_installed() {
  # Pulumi leaves <dir>.partial behind while (or if it failed) installing.
  [[ -x $PLUGIN_DIR/pulumi-resource-kubernetes && ! -e $PLUGIN_DIR.partial ]]
}

# --- fast path: compatible toolchain already on PATH -------------------------
# Not the cache's own build (on PATH in a shell that sourced pulumi-env.sh): that one is checked against its
# stamp below, so a changed pin or host source is rebuilt.
if existing=$(command -v pulumi 2>/dev/null) && [[ $existing != "$CACHE_ROOT"/* ]] &&
  [[ "$(pulumi version 2>/dev/null || true)" == "v$PULUMI_VERSION" ]] &&
  { [[ -x $(dirname -- "$existing")/pulumi-language-python ]] || command -v pulumi-language-python >/dev/null; } &&
  plugin_installed; then
  log "pulumi v$PULUMI_VERSION ($existing) and kubernetes plugin $PULUMI_KUBERNETES_VERSION already available"
  automatic_log
  emit_exports ""
  exit 0
fi

# --- helpers -------------------------------------------------------------------
sha() { sha256sum "$@" | awk '{print $1}'; }

pulumi_stamp() {
  printf 'pulumi=%s\n' "$PULUMI_VERSION"
  local -a files
  mapfile -t files < <(cd "$ENGINE_DIR/pulumi" && find cmd -type f -name '*.go' | LC_ALL=C sort)
  (cd "$ENGINE_DIR/pulumi" && sha go.mod go.sum "${files[@]}")
}

k8s_stamp() {
  printf 'kubernetes=%s module=%s\n' "$PULUMI_KUBERNETES_BUILD_VERSION" "$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION"
  (cd "$ENGINE_DIR/kubernetes" && sha go.mod go.sum)
}

# up_to_date PREFIX STAMP FILE...
up_to_date() {
  local prefix=$1 stamp=$2 f
  shift 2
  [[ -f $prefix/.stamp && "$(cat "$prefix/.stamp")" == "$stamp" ]] || return 1
  for f in "$@"; do [[ -x $prefix/bin/$f ]] || return 1; done
}

version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

setup_go() {
  command -v go >/dev/null || die "Go >= $GO_MIN_VERSION is required to build the Pulumi engine (not found on PATH)"
  local gov
  gov=$(go env GOVERSION)
  gov=${gov#go}
  version_ge "${gov%%[-+ ]*}" "$GO_MIN_VERSION" || die "Go >= $GO_MIN_VERSION required, found go$gov"
  # -mod=readonly: every module must match the committed go.sum (no edits, no
  # silent upgrades). GOTOOLCHAIN=local: never download another Go toolchain.
  export GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
  log "using go$gov ($(command -v go)), GOPROXY=$(go env GOPROXY)"
}

TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do rm -rf -- "$d"; done; }
trap cleanup EXIT

# new_tmp VAR: a fresh build directory in VAR, removed on exit unless published (not in $(...): a subshell's
# TMP_DIRS would be lost).
new_tmp() { local d; d=$(mktemp -d "$CACHE_ROOT/.engine-build.XXXXXX"); TMP_DIRS+=("$d"); printf -v "$1" '%s' "$d"; }

# Replace PREFIX by the freshly built tree atomically enough for a cache.
publish() {
  local tmp=$1 prefix=$2
  rm -rf -- "$prefix.old"
  [[ -e $prefix ]] && mv -- "$prefix" "$prefix.old"
  mv -- "$tmp" "$prefix"
  rm -rf -- "$prefix.old"
}

build_pulumi() {
  local stamp=$1 out t0=$SECONDS sdk_dir
  new_tmp out
  mkdir -p "$out/bin"
  log "building pulumi v$PULUMI_VERSION ($PULUMI_PKG_MODULE/cmd/pulumi) ..."
  (cd "$ENGINE_DIR/pulumi" && go build -trimpath \
    -ldflags "-s -w -X $PULUMI_SDK_MODULE/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$out/bin/pulumi" "$PULUMI_PKG_MODULE/cmd/pulumi") >&2
  log "building pulumi-language-python (scripts/engine/pulumi/cmd/pulumi-language-python) ..."
  (cd "$ENGINE_DIR/pulumi" && go build -trimpath \
    -ldflags "-s -w -X $PULUMI_SDK_MODULE/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$out/bin/pulumi-language-python" ./cmd/pulumi-language-python) >&2
  # The exec shim and the dynamic-provider shim ship inside the sdk/v3 module.
  sdk_dir=$(cd "$ENGINE_DIR/pulumi" && go mod download "$PULUMI_SDK_MODULE" >&2 &&
    go list -m -f '{{.Dir}}' "$PULUMI_SDK_MODULE")
  [[ -n $sdk_dir && -f $sdk_dir/python/cmd/pulumi-language-python-exec ]] ||
    die "pulumi-language-python-exec not found in $PULUMI_SDK_MODULE ($sdk_dir)"
  install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$out/bin/"
  install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$out/bin/"
  local got
  got=$(PULUMI_HOME=$out/.home "$out/bin/pulumi" version)
  rm -rf -- "$out/.home"
  [[ $got == "v$PULUMI_VERSION" ]] || die "built pulumi reports $got, expected v$PULUMI_VERSION"
  go version >"$out/GO_VERSION"
  printf '%s\n' "$stamp" >"$out/.stamp"
  publish "$out" "$PULUMI_PREFIX"
  log "pulumi v$PULUMI_VERSION built in $((SECONDS - t0))s -> $PULUMI_BIN_DIR"
}

build_kubernetes() {
  local stamp=$1 work out t0=$SECONDS src pkg_dir
  new_tmp work
  new_tmp out
  mkdir -p "$out/bin"
  log "building pulumi-resource-kubernetes $PULUMI_KUBERNETES_BUILD_VERSION ($K8S_MODULE@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION) ..."
  cp "$ENGINE_DIR/kubernetes/go.mod" "$ENGINE_DIR/kubernetes/go.sum" "$work/"
  # Download (and verify against go.sum) the provider module, then build it from
  # a writable copy: its main package embeds schema-embed.json and
  # terraform-mapping-embed.json, which upstream's go:generate step
  # (cmd/pulumi-resource-kubernetes/generate.go) derives from the committed
  # schema.json / terraform-mapping.json before every build.
  src=$(cd "$work" && go mod download "$K8S_MODULE" >&2 && go list -m -f '{{.Dir}}' "$K8S_MODULE")
  [[ -n $src && -d $src ]] || die "could not download $K8S_MODULE"
  cp -R "$src" "$work/provider"
  chmod -R u+w "$work/provider"
  (cd "$work" && go mod edit -replace "$K8S_MODULE=./provider")
  pkg_dir=$work/provider/cmd/pulumi-resource-kubernetes
  mkdir -p "$work/gen"
  # Same program as upstream's generate.go, minus its `//go:build ignore` tag,
  # built inside the wrapper module so that go.sum covers its imports.
  sed -e '/^\/\/go:build ignore/d' -e '/^\/\/ +build ignore/d' "$pkg_dir/generate.go" >"$work/gen/main.go"
  (cd "$work" && go build -o "$work/gen/generate" ./gen) >&2
  (cd "$pkg_dir" && VERSION=$PULUMI_KUBERNETES_BUILD_VERSION "$work/gen/generate") >&2
  [[ -s $pkg_dir/schema-embed.json && -s $pkg_dir/terraform-mapping-embed.json ]] ||
    die "schema generation for pulumi-resource-kubernetes failed"
  (cd "$work" && go build -trimpath \
    -ldflags "-s -w -X $K8S_MODULE/pkg/version.Version=$PULUMI_KUBERNETES_BUILD_VERSION" \
    -o "$out/bin/pulumi-resource-kubernetes" "$K8S_MODULE/cmd/pulumi-resource-kubernetes") >&2
  go version >"$out/GO_VERSION"
  printf '%s\n' "$stamp" >"$out/.stamp"
  publish "$out" "$K8S_PREFIX"
  log "pulumi-resource-kubernetes $PULUMI_KUBERNETES_BUILD_VERSION built in $((SECONDS - t0))s -> $K8S_PLUGIN_BIN"
}

# --- build what is missing ---------------------------------------------------
mkdir -p "$CACHE_ROOT" "$PULUMI_HOME"
if command -v flock >/dev/null; then
  exec 9>"$CACHE_ROOT/.engine.lock"
  flock 9 # serialize concurrent bootstraps sharing one cache
  # Builds only happen under this lock, so any build dir left now is from an
  # interrupted run.
  rm -rf -- "$CACHE_ROOT"/.engine-build.*
fi

P_STAMP=$(pulumi_stamp)
K_STAMP=$(k8s_stamp)
need_go=false
up_to_date "$PULUMI_PREFIX" "$P_STAMP" pulumi pulumi-language-python pulumi-language-python-exec || need_go=true
up_to_date "$K8S_PREFIX" "$K_STAMP" pulumi-resource-kubernetes || need_go=true
if $need_go; then setup_go; fi

if up_to_date "$PULUMI_PREFIX" "$P_STAMP" pulumi pulumi-language-python pulumi-language-python-exec; then
  log "cached: $PULUMI_BIN_DIR"
else
  build_pulumi "$P_STAMP"
fi
if up_to_date "$K8S_PREFIX" "$K_STAMP" pulumi-resource-kubernetes; then
  log "cached: $K8S_PLUGIN_BIN"
else
  build_kubernetes "$K_STAMP"
fi

# --- register the kubernetes plugin offline ----------------------------------
if plugin_installed && cmp -s "$PLUGIN_DIR/pulumi-resource-kubernetes" "$K8S_PLUGIN_BIN"; then
  log "kubernetes plugin $PULUMI_KUBERNETES_VERSION already installed in $PULUMI_HOME"
elif [[ $PULUMI_HOME != "$CACHE_ROOT/pulumi-home" ]] && plugin_installed; then
  # A PULUMI_HOME of the caller's own keeps the plugin it has at this version (the official build, say).
  log "kubernetes plugin $PULUMI_KUBERNETES_VERSION in $PULUMI_HOME is the caller's own: left as it is"
else
  log "installing kubernetes plugin $PULUMI_KUBERNETES_VERSION (build $PULUMI_KUBERNETES_BUILD_VERSION) into $PULUMI_HOME"
  "$PULUMI_BIN_DIR/pulumi" plugin install resource kubernetes "$PULUMI_KUBERNETES_VERSION" \
    --file "$K8S_PLUGIN_BIN" --reinstall >&2
  plugin_installed || die "kubernetes plugin not found in $PLUGIN_DIR after install"
fi

automatic_log
log "ready in $((SECONDS - START))s: pulumi v$PULUMI_VERSION, kubernetes plugin $PULUMI_KUBERNETES_VERSION"
emit_exports "$PULUMI_BIN_DIR"
