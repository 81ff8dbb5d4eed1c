#!/usr/bin/env bash
# Creates .venv/ at the repo root if it is missing and installs requirements into it.
# tensorflow-gan, tensorflow-hub and tf-keras go in with --no-deps: their declared
# dependencies would pull a second, full `tensorflow` wheel over tensorflow-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-nodeps.txt | sha1sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
echo "$want" > "$stamp"
