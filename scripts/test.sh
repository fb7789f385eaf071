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
# pytest-xdist workers: twice the available cores (at most 4), whole test files per worker (their
# module fixtures train once); what several files share is made once per run (tests/conftest.py).
# The extra workers fill the time the others wait on servers, subprocesses, browsers and locks:
# on 2 cores, 3 workers kept their own CPU busy only 25-50% of the time (the rest waiting on the
# CLI processes and servers they start); 4 workers ran the same tests in 886 s where 3 took 967 s
# (one run each, consecutive, same host) and 2 took 847 s against 3's 747 s on an earlier host.
# The worker count changes no test's numerics, unlike TensorFlow's op-thread settings (one op
# thread per worker was slower still: 126 s against 109 s on three files). GEN_KERAS_TEST_WORKERS=0
# runs everything in this one process; a -n in "$@" wins over this one.
workers="${GEN_KERAS_TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(2 * len(os.sched_getaffinity(0)), 4))')}"
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
# The 25 slowest tests close the report (where to look when the suite grows).
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "${parallel[@]}" "$@"
