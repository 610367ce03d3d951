#!/usr/bin/env bash
# The main job: a real `pulumi up` of one stack (default dev) on the local backend, then its outputs.
# Without `cluster` in the stack's config, manifests are rendered to build/manifests/<stack>.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${1:-dev}
# The local default, whatever the caller's shell points Pulumi at: `pulumi up --yes` of a team backend is no
# set-up command. The committed stack files' secrets are encrypted with the local passphrase.
export PULUMI_BACKEND_URL="file://$PWD/build/state" PULUMI_CONFIG_PASSPHRASE=release-infra-local
unset PULUMI_CONFIG_PASSPHRASE_FILE
# shellcheck source=scripts/pulumi-env.sh
. scripts/pulumi-env.sh
pulumi stack select --create "$stack" --non-interactive >&2
pulumi up --yes --non-interactive --stack "$stack" >&2
pulumi stack output --json --stack "$stack"
