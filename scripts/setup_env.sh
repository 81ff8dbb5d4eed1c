#!/usr/bin/env bash
# Creates .venv/ at the repo root if it is missing, installs requirements into it,
# then the project itself, editable (`pip install -e . --no-deps`, pyproject.toml):
# `import sagan_tf` and the console scripts (.venv/bin/sagan-train, sagan-eval,
# sagan-sample, sagan-convert, sagan-export, sagan-benchmark) then work from any
# directory, and edits of the checkout take effect without reinstalling.
# tensorflow-gan, tensorflow-hub and tf-keras go in with --no-deps: their declared
# dependencies would pull a second, full `tensorflow` wheel over tensorflow-cpu.
#
# SAGAN_TF_DEVICE picks the TensorFlow build:
#   cpu (default on x86_64): tensorflow-cpu, as requirements.txt pins it;
#   gpu: tensorflow[and-cuda] (the same version, with the CUDA 12 wheels, ~2.5 GB),
#        in place of tensorflow-cpu; for Linux x86_64 machines with an NVIDIA GPU.
# Switching the device of an existing .venv reinstalls (the stamp records it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${SAGAN_TF_DEVICE:-cpu}
case "$DEVICE" in
  cpu|gpu) ;;
  *) echo "setup_env.sh: SAGAN_TF_DEVICE must be 'cpu' or 'gpu', got '$DEVICE'." >&2
     exit 2 ;;
esac
reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
if [ "$DEVICE" = gpu ]; then
  # Every TensorFlow line of requirements.txt becomes the CUDA build of its version.
  tf_version=$(sed -n 's/^tensorflow-cpu==\([0-9.]*\).*/\1/p' requirements.txt)
  if [ -z "$tf_version" ]; then
    echo "setup_env.sh: no tensorflow-cpu==X pin in requirements.txt to swap." >&2
    exit 2
  fi
  grep -v '^tensorflow\(-cpu\)\?==' requirements.txt > "$reqs"
  echo "tensorflow[and-cuda]==$tf_version" >> "$reqs"
else
  cp requirements.txt "$reqs"
fi
stamp=.venv/.requirements.sha
want=$( (echo "$DEVICE"; cat "$reqs" requirements-nodeps.txt pyproject.toml) | sha1sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -f .venv/.device ] && [ "$(cat .venv/.device)" != "$DEVICE" ]; then
  # The CPU and the CUDA wheels write the same tensorflow/ folder: remove the
  # build of the other device before installing this one.
  .venv/bin/python -m pip uninstall -q -y tensorflow tensorflow-cpu || true
fi
.venv/bin/python -m pip install -q -r "$reqs"
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$DEVICE" > .venv/.device
echo "$want" > "$stamp"
