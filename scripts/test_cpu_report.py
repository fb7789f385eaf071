"""Where the test suite's CPU goes: a summary of the JSON lines a run wrote under
``GEN_KERAS_TEST_CPU_LOG`` (tests/conftest.py), per file and per test, heaviest first.

    GEN_KERAS_TEST_CPU_LOG=/tmp/cpu bash scripts/test.sh
    .venv/bin/python scripts/test_cpu_report.py /tmp/cpu [--top 25]

"own" is the CPU of the pytest process that ran the test (every TensorFlow thread of it),
"children" the CPU of the processes it waited for (a server stopped by a fixture counts for
the test that stopped it). Each pytest process adds a ``<process>`` row at its end: its whole
CPU, start-up and collection included (the xdist controller's row is marked ``controller``: its
children are the workers, counted by their own rows).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def read_rows(folder: Path) -> list[dict]:
    rows = [json.loads(line) for path in sorted(folder.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{folder}: no *.jsonl rows (run the suite with GEN_KERAS_TEST_CPU_LOG={folder})")
    return rows


def summary(rows: list[dict], top: int) -> str:
    processes = [r for r in rows if r["test"] == "<process>"]  # a pytest process's whole CPU
    rows = [r for r in rows if r["test"] != "<process>"]
    total = sum(r["own"] + r["children"] for r in rows)
    files = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for r in rows:
        f = files[r["test"].split("::")[0]]
        f[0] += r["own"]
        f[1] += r["children"]
        f[2] += 1
    out = [f"{len(rows)} tests, {total:.0f} CPU-s (own {sum(r['own'] for r in rows):.0f}, "
           f"children {sum(r['children'] for r in rows):.0f})"]
    if processes:
        # the controller's children are the workers (their own rows): its own CPU only
        whole = sum(r["own"] + (0.0 if r.get("controller") else r["children"]) for r in processes)
        out.append(f"the {len(processes)} pytest processes: {whole:.0f} CPU-s in all "
                   f"({whole - total:.0f} outside the tests: start-up, collection, the controller)")
    out += ["",
           f"{'CPU-s':>7} {'share':>6} {'tests':>5}  file"]
    for name, (own, children, n) in sorted(files.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:top]:
        out.append(f"{own + children:7.1f} {100 * (own + children) / total:5.1f}% {n:5d}  {name}")
    out += ["", f"{'CPU-s':>7} {'own':>7} {'child':>7}  test"]
    for r in sorted(rows, key=lambda r: -(r["own"] + r["children"]))[:top]:
        out.append(f"{r['own'] + r['children']:7.1f} {r['own']:7.1f} {r['children']:7.1f}  {r['test']}")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summary(read_rows(args.folder), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
