#!/usr/bin/env bash
# The whole test suite: pure core, components and program under mocks, then the tiers that use real parts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-env.sh
scripts/debian-packages.sh prometheus prometheus-alertmanager shellcheck  # tests/real; actionlint
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "test.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit $status
