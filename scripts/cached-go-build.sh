# shellcheck shell=bash
# Sourced by the bootstrap scripts that build a binary from pinned Go modules: print the cached binary's path, or
# build it once into the cache. The caller defines log() and die().
#
#   cached_go_build <name> <module dir> <cache prefix> <package> [what the log says of the build]
#
# The binary is <cache prefix>/bin/<name>. The module's go.mod is not rewritten and every module is checked
# against its go.sum (-mod=readonly). The build goes to a temporary file that is moved into place: an interrupted
# build or a concurrent caller never sees a partial binary.

cached_go_build() {
  local name=$1 module_dir=$2 prefix=$3 package=$4 note=${5:-}
  local bin=$prefix/bin/$name start=$SECONDS
  if [[ -x $bin ]]; then
    log "cached: $bin"
    printf '%s\n' "$bin"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build $bin)"
  log "building $name (${prefix##*/}) with $(go env GOVERSION)${note:+; $note} ..."
  mkdir -p "$prefix/bin"
  CACHED_GO_BUILD_TMP=$(mktemp "$prefix/bin/.$name.XXXXXX")
  trap 'rm -f "$CACHED_GO_BUILD_TMP"' EXIT
  (
    cd "$module_dir"
    GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local \
      go build -trimpath -ldflags "-s -w" -o "$CACHED_GO_BUILD_TMP" "$package"
  ) >&2 || die "go build failed"
  "$CACHED_GO_BUILD_TMP" version >/dev/null || die "the built binary does not run"
  chmod 0755 "$CACHED_GO_BUILD_TMP"
  mv -f "$CACHED_GO_BUILD_TMP" "$bin"
  trap - EXIT
  log "built $bin in $((SECONDS - start))s"
  printf '%s\n' "$bin"
}
