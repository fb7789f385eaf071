"""scripts/test_cpu_report.py: the suite's CPU per file and per test, by hand values."""
from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import ROOT


def _report():
    spec = importlib.util.spec_from_file_location("test_cpu_report", ROOT / "scripts" / "test_cpu_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_are_summed_per_file_and_ranked(tmp_path):
    rows = [{"test": "tests/test_a.py::one", "own": 10.0, "children": 2.0, "wall": 9},
            {"test": "tests/test_a.py::two", "own": 1.0, "children": 0.0, "wall": 1},
            {"test": "tests/test_b.py::big", "own": 3.0, "children": 24.0, "wall": 20},
            {"test": "<process>", "own": 50.0, "children": 30.0},
            # the xdist controller: its children are the workers, counted above
            {"test": "<process>", "own": 5.0, "children": 80.0, "controller": True}]
    (tmp_path / "gw0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (tmp_path / "gw1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    report = _report()
    text = report.summary(report.read_rows(tmp_path), top=5)
    lines = text.splitlines()
    assert lines[0] == "3 tests, 40 CPU-s (own 14, children 26)"
    assert lines[1] == "the 2 pytest processes: 85 CPU-s in all (45 outside the tests: start-up, collection, the controller)"
    files = [line for line in lines if line.rstrip().endswith(".py")]
    assert files[0].split() == ["27.0", "67.5%", "1", "tests/test_b.py"]  # heaviest first
    assert files[1].split() == ["13.0", "32.5%", "2", "tests/test_a.py"]
    tests = [line.split() for line in lines if "::" in line]
    assert [t[-1] for t in tests] == ["tests/test_b.py::big", "tests/test_a.py::one", "tests/test_a.py::two"]
    assert tests[1][:3] == ["12.0", "10.0", "2.0"]


def test_an_empty_folder_says_how_to_fill_it(tmp_path):
    with pytest.raises(SystemExit, match="GEN_KERAS_TEST_CPU_LOG="):
        _report().read_rows(tmp_path)
