#!/usr/bin/env bash
# The README's test command: a fresh venv in .venv, the package with its test extras, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e ".[cpu,test,batch]"
export GEN_KERAS_CACHE="${GEN_KERAS_CACHE:-$PWD/.venv/gen_keras_cache}"
if [ "${CI:-}" = "true" ]; then
  # In CI the browser test must run, never skip.
  export GEN_KERAS_REQUIRE_BROWSER=1
fi
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
