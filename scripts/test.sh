#!/usr/bin/env bash
# The whole test suite, from a fresh machine: bootstrap (venv, extras, Debian tools), lint, pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/test_bundle.py -x`. The tests run on
# two pytest-xdist workers (MODELHAUL_TEST_WORKERS, 0 for one process): each worker starts its own
# registry and servers, so the suite takes about half the time on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -p no:cacheprovider -n "${MODELHAUL_TEST_WORKERS:-2}" "$@"
