#!/usr/bin/env bash
# Build (once) the Jaeger binary the tracing tests store their traces in, and print its path.
#
# Jaeger v2 (`cmd/jaeger` of github.com/jaegertracing/jaeger v1.75.0, built on the OpenTelemetry Collector: an
# OTLP receiver, in-memory trace storage and the query HTTP API) is built from Go modules, the one way here to get
# it: no prebuilt binary or container image can be fetched. Every module version is pinned in scripts/jaeger/go.mod
# (a `tool` directive) and checked against the committed scripts/jaeger/go.sum (GOFLAGS=-mod=readonly).
#
# A cold build is slow: 4m11s measured on this project's 2-core machine, the modules already downloaded (fetching
# them adds to that); a rebuild with Go's build cache partly warm took 2.5 minutes. Once built, the binary (~85 MB)
# is cached outside the repository and reused without running Go:
#
#   ${RELEASE_INFRA_CACHE:-$HOME/.cache/release-infra}/jaeger-<VERSION>-<HASH>/bin/jaeger
#
# where <VERSION> is the pinned github.com/jaegertracing/jaeger version and <HASH> a short sha256 of
# scripts/jaeger/go.mod and go.sum, so a pin change builds a new binary.
#
# Usage:   JAEGER=$(scripts/bootstrap-jaeger.sh | tail -n1)
# Stdout:  the absolute path of the binary, as the last line. Logs go to stderr.
# Needs:   Go >= 1.24.6 on PATH, only when the binary is not cached yet.
set -euo pipefail

log() { printf '[bootstrap-jaeger] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
MODULE_DIR=$SCRIPT_DIR/jaeger
CACHE_ROOT=${RELEASE_INFRA_CACHE:-${HOME:?}/.cache/release-infra}
PACKAGE=github.com/jaegertracing/jaeger/cmd/jaeger

[[ -f $MODULE_DIR/go.mod && -f $MODULE_DIR/go.sum ]] || die "missing $MODULE_DIR/go.mod or go.sum"

VERSION=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' "$MODULE_DIR/go.mod")
[[ -n $VERSION ]] || die "github.com/jaegertracing/jaeger is not pinned in $MODULE_DIR/go.mod"

HASH=$(cd "$MODULE_DIR" && cat go.mod go.sum | sha256sum | cut -c1-12)
# shellcheck source=scripts/cached-go-build.sh
. "$SCRIPT_DIR/cached-go-build.sh"
cached_go_build jaeger "$MODULE_DIR" "$CACHE_ROOT/jaeger-$VERSION-$HASH" "$PACKAGE" "a cold build takes about 4 minutes"
