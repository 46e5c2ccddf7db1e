#!/usr/bin/env bash
# Make this checkout ready to run: a virtualenv in .venv with modelhaul and every extra installed,
# and the Debian tools the tests use (docker-registry, skopeo, htpasswd; etcd for the cluster tests;
# redis-server and postgresql for the Celery test; chromium + chromium-driver for the Airflow UI test).
# Safe to re-run: it only reinstalls when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${MODELHAUL_VENV:-.venv}

need_apt=()
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
# the real control plane and operators of ../shared/tools (tests/fixtures/cluster.py, operators.py)
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v kubectl >/dev/null 2>&1 || echo "bootstrap: the cluster tests need kubectl >= 1.27 on PATH (not Debian's 1.20)" >&2
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)  # the Celery scale-out test's broker
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)  # its metadata DB
# the Airflow UI test drives a headless browser
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
  else
    echo "bootstrap: please install ${need_apt[*]} (Debian packages); the registry tests need them" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi

stamp="$VENV/.modelhaul-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing modelhaul[test] into $VENV (first run takes several minutes)" >&2
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$VENV/bin/python" -c "import modelhaul.steps, mlflow, kfp, airflow, onnxruntime, torch" \
    || { echo "bootstrap: install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
