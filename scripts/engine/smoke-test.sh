#!/usr/bin/env bash
# End-to-end check of the engine toolchain provided by scripts/bootstrap-engine.sh:
# a throw-away Pulumi Python project (pip + virtualenv, PyPI pins from
# versions.env) with a kubernetes Provider rendering YAML to a directory and one
# ConfigMap, on a local file backend. Runs `pulumi up`, checks the rendered
# YAML, then `pulumi preview --expect-no-changes`. Needs PyPI for the venv.
#
# Usage: scripts/engine/smoke-test.sh        (keeps nothing; KEEP=1 keeps the temp dir)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"

exports=$("$HERE/../bootstrap-engine.sh")
eval "$exports"

work=$(mktemp -d)
if [[ ${KEEP:-} != 1 ]]; then trap 'rm -rf -- "$work"' EXIT; else echo "work dir: $work" >&2; fi

proj=$work/project
mkdir -p "$proj" "$work/state"
cat >"$proj/Pulumi.yaml" <<'EOF'
name: engine-smoke
description: Smoke test for scripts/bootstrap-engine.sh
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
EOF
cat >"$proj/requirements.txt" <<EOF
pulumi==$PULUMI_VERSION
pulumi-kubernetes==$PULUMI_KUBERNETES_VERSION
EOF
cat >"$proj/__main__.py" <<'EOF'
import os

import pulumi
import pulumi_kubernetes as k8s

provider = k8s.Provider("render", render_yaml_to_directory=os.environ["RENDER_DIR"])
cm = k8s.core.v1.ConfigMap(
    "smoke",
    metadata=k8s.meta.v1.ObjectMetaArgs(name="smoke", namespace="default"),
    data={"hello": "world"},
    opts=pulumi.ResourceOptions(provider=provider),
)
pulumi.export("configmap", cm.metadata.name)
EOF

python3 -m venv "$proj/venv"
"$proj/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$proj/requirements.txt"

export PULUMI_CONFIG_PASSPHRASE=smoke RENDER_DIR=$work/rendered
cd "$proj"
pulumi version
pulumi plugin ls
pulumi login "file://$work/state"
pulumi stack init dev --non-interactive
pulumi up --yes --skip-preview --non-interactive
yaml=$RENDER_DIR/1-manifest/v1-configmap-default-smoke.yaml
grep -q 'hello: world' "$yaml" || { echo "rendered YAML missing: $yaml" >&2; exit 1; }
cat "$yaml"
pulumi preview --expect-no-changes --non-interactive
echo "smoke test passed"
