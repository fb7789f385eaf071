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
# pytest-xdist workers: one more than the available cores (at most 4), whole test files per
# worker (their module fixtures train once); what several files share is made once per run
# (tests/conftest.py). The extra worker fills the time the others wait on servers, subprocesses,
# browsers and timeouts: on 2 cores, 3 workers left the CPU 1% idle and ran the suite in 747 s
# where 2 took 847 s (same tests; the worker count does not change any test's numerics, unlike
# TensorFlow's op-thread settings, and one op thread per worker was slower: 126 s against 109 s
# on three files). 4 workers on 2 cores: 886 s against 3's 967 s in one pair of runs, 959 s in a
# clean-clone CI run, where a served request passed its 30 s timeout — not adopted.
# GEN_KERAS_TEST_WORKERS=0 runs everything in this one process; a -n in "$@" wins over this one.
workers="${GEN_KERAS_TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(len(os.sched_getaffinity(0)) + 1, 4))')}"
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
# The 25 slowest tests close the report (where to look when the suite grows).
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "${parallel[@]}" "$@"
