#!/usr/bin/env bash
# Trains the offline digits32 preset on the CPU into runs/digits32 (creating .venv/
# first if needed). Running it again resumes the run; extra args go to launch.train,
# e.g. `bash scripts/train_digits.sh --steps=3000`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m launch.train --preset=digits32 --workdir=runs/digits32 "$@"
