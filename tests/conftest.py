"""Shared fixtures. TF is configured with TWO logical CPU devices before anything else touches
it, so the mirrored-strategy paths run for real on a CPU-only machine."""
from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def chromium_or_skip() -> tuple[str, object]:
    """``(chromium binary, playwright's sync_playwright)`` for the browser tests; skips without
    them, fails instead when ``GEN_KERAS_REQUIRE_BROWSER=1`` (CI: the browser tests must run)."""
    import shutil

    required = os.environ.get("GEN_KERAS_REQUIRE_BROWSER") == "1"
    binary = next((b for b in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                   if b and Path(b).exists()), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if binary is None or sync_playwright is None:
        missing = "the chromium binary" if binary is None else "the playwright package"
        if required:
            pytest.fail(f"GEN_KERAS_REQUIRE_BROWSER=1 but {missing} is missing (apt-get install chromium)")
        pytest.skip(f"{missing} is not installed")
    return binary, sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0, proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class MlflowServer:
    """A real ``mlflow server`` on a free loopback port, in its own process group."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or free_port()
        self.proc = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "MlflowServer":
        from gen_keras.stores import ensure_store

        self.root.mkdir(parents=True, exist_ok=True)
        ensure_store(f"sqlite:///{self.root / 'mlflow.db'}")  # as training makes a new store
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(Path(PYTHON).with_name("mlflow")), "server",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # MLflow 3's background job consumers (GenAI features) cost CPU and start-up time
            # and nothing here uses them.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        wait_http(f"{self.uri}/health", timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server")).start()
    yield server
    server.stop()


# -- one test run, several xdist workers ----------------------------------------------------------------
# scripts/test.sh runs the suite on every core (pytest-xdist, whole modules per worker: --dist
# loadfile). What costs a training is made once per RUN, not once per worker: in a folder all the
# workers share (the controller's base temp folder, the parent of each worker's), under a lock.
def shared_dir(tmp_path_factory, name: str) -> Path:
    """``name`` in the folder every worker of this test run shares (the session's own base temp
    folder when pytest runs without workers)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(exist_ok=True)
    return path


def made_once(tmp_path_factory, name: str, make):
    """``make(folder)``'s result, computed by the first worker that asks and read back (pickled) by
    the others, which wait on the lock meanwhile. ``make`` writes what it keeps into ``folder``."""
    import fcntl
    import pickle

    folder = shared_dir(tmp_path_factory, name)
    done = folder / "made.pickle"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return pickle.loads(done.read_bytes())
        result = make(folder)
        done.write_bytes(pickle.dumps(result))
        return result


# Seconds each file takes (setup included; from a whole run with 3 workers on 2 cores, scaled by
# 0.6; what a file makes once for the run — an evaluator, shared exports — counts for whichever
# file asked first). Under xdist the files are handed out heaviest first (collection order;
# xdist's own reorder by test count is off), so that no long file starts last while the other
# workers idle. A file not listed counts as 10 s; a stale figure only costs balance, never a test.
FILE_SECONDS = {
    "test_distribute.py": 90, "test_cyclegan.py": 90, "test_stylegan.py": 69,
    "test_disentangling_models.py": 59, "test_walkthrough.py": 57, "test_faults.py": 55,
    "test_eval_bench.py": 54, "test_run_resolution.py": 48, "test_representation.py": 41,
    "test_serving_browser.py": 40, "test_batch.py": 38, "test_server_bind.py": 37,
    "test_eval_sanity.py": 36, "test_retrain.py": 36, "test_first_hour.py": 35, "test_eval_cli.py": 32,
    "test_cyclegan_resume.py": 28, "test_ae_family.py": 25, "test_progressive.py": 24,
    "test_hardening_probe.py": 21, "test_gan_models.py": 21, "test_multiworker.py": 21,
    "test_translation_models.py": 21, "test_colour.py": 20, "test_serving_load.py": 17,
    "test_export_contract.py": 15, "test_latent.py": 15, "test_folder_data.py": 15, "test_tracking.py": 15,
    "test_hardening.py": 14, "test_vae_models.py": 14, "test_serving_style.py": 13, "test_scenes.py": 13,
    "test_mlflow_model.py": 12,
}


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below
        config.option.loadscopereorder = False


# The quick tier (`bash scripts/test.sh -m "not slow"`, for iteration; CI runs everything): every
# test of a file that takes this long or longer in FILE_SECONDS is marked slow.
SLOW_FILE_SECONDS = 17


def pytest_collection_modifyitems(config, items):
    for item in items:
        if FILE_SECONDS.get(item.path.name, 10) >= SLOW_FILE_SECONDS:
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike (a stable sort)
        items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 10))


# GEN_KERAS_TEST_CPU_LOG=<folder>: each test's CPU seconds (this process and the child processes it
# waited for) appended as JSON lines, one file per worker — where the suite's CPU goes, which the
# wall-clock durations under several workers on shared cores do not say.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = os.environ.get("GEN_KERAS_TEST_CPU_LOG")
    if not folder:
        yield
        return
    own, children, started = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), time.time()
    yield
    _cpu_row(folder, {"test": item.nodeid, "own": round(_cpu(resource.RUSAGE_SELF) - own, 2),
                      "children": round(_cpu(resource.RUSAGE_CHILDREN) - children, 2),
                      "wall": round(time.time() - started, 2)})


def pytest_sessionfinish(session):
    """With GEN_KERAS_TEST_CPU_LOG: the process's whole CPU (start-up, imports and collection
    included) as one more row, ``<process>``."""
    folder = os.environ.get("GEN_KERAS_TEST_CPU_LOG")
    if folder:
        # The xdist controller's children are the workers, whose own rows count them already.
        controller = not hasattr(session.config, "workerinput") and bool(
            getattr(session.config.option, "numprocesses", None))
        _cpu_row(folder, {"test": "<process>", "own": round(_cpu(resource.RUSAGE_SELF), 2),
                          "children": round(_cpu(resource.RUSAGE_CHILDREN), 2),
                          **({"controller": True} if controller else {})})


def _cpu(who) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _cpu_row(folder: str, row: dict) -> None:
    import json

    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.jsonl", "a") as out:
        out.write(json.dumps(row) + "\n")


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory):
    """One prepared TFDS cache for the whole test run (mnist10k is prepared once into it, the
    evaluators trained once), shared by the xdist workers: preparation and training under
    GEN_KERAS_CACHE hold their own file locks."""
    path = shared_dir(tmp_path_factory, "tfds_cache")
    os.environ["GEN_KERAS_CACHE"] = str(path)
    return path


@pytest.fixture
def smoke_overrides(tmp_path, data_cache):
    """Config overrides for a short, real run on a slice of mnist10k, writing under tmp_path."""
    return [f"tracking.outputs_dir={tmp_path / 'outputs'}", "train.progress=false",
            "data.limit_train=1024", "data.limit_test=256", "train.batch_size=64",
            # the end-of-training quality metrics have their own tests (test_eval_cli.py)
            "train.evaluate_at_end=false"]
