#!/usr/bin/env bash
# Runs the whole test suite (creating .venv/ first if needed). Extra args go to pytest.
# Tests run in SAGAN_TF_TEST_WORKERS processes (pytest-xdist, default 2: most tests
# are Python-bound tracing, so two processes on two cores take about half the time;
# 0 runs them in this process, in file order).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python -m pytest -q -n "${SAGAN_TF_TEST_WORKERS:-2}" tests "$@"
