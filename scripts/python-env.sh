#!/usr/bin/env bash
# Creates or refreshes .venv with the pinned dependencies; a no-op when pyproject.toml has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python dynamic providers look for the virtualenv relative to `main: infra/` (pulumi/pulumi#7061).
ln -sfn ../.venv infra/.venv
stamp=.venv/.pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi
echo "python-env: installing pinned dependencies into .venv" >&2
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip==26.3
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
echo "$want" > "$stamp"
