"""Shared by the serving tests: real exports from short real trainings, and a real
``gen-keras serve`` process on a free loopback port.

Test modules import the fixtures from here (``from serving_fixtures import ...``). pytest makes
one fixture definition per importing module, so the trainings are cached in this module, and
across xdist workers in a folder they share (conftest.made_once): the whole test run trains each
model once.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GEN_KERAS = str(Path(sys.executable).with_name("gen-keras"))
_LOCK = threading.Lock()
_CACHE: dict = {}


@dataclass
class ServingExports:
    root: Path
    models_dir: Path  # holds "vae" and the conditional model, as symlinks to the exports
    vae: Path
    cond: Path
    cond_kind: str  # "cgan" when the conditional GAN is registered, else "cvae"
    test_images: np.ndarray  # 8 real mnist10k test digits in [0, 1]
    test_labels: np.ndarray


def _train(config: str, overrides: list[str]):
    from gen_keras.config_loader import load_config
    from gen_keras.training import train

    return train(load_config(ROOT / config, overrides)).export_dir


@pytest.fixture(scope="session")
def serving_exports(tmp_path_factory, data_cache) -> ServingExports:
    """A VAE (every endpoint) and a conditional model, each trained for one epoch on 1,024
    mnist10k digits and exported by the real exporter. The conditional model is the CGAN
    (generate only, like every GAN export) when registered, else the conditional VAE."""
    from conftest import made_once

    with _LOCK:
        if "exports" not in _CACHE:  # once per test run, whatever the number of xdist workers
            _CACHE["exports"] = made_once(tmp_path_factory, "serving_exports", _make_exports)
    return _CACHE["exports"]


def _make_exports(root: Path) -> ServingExports:
    from gen_keras.config_loader import load_config
    from gen_keras.data import load_split_arrays
    from gen_keras.models.registry import model_kinds

    common = [f"tracking.outputs_dir={root / 'outputs'}", f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
              "train.progress=false", "data.limit_train=1024", "data.limit_test=256",
              "train.batch_size=64", "train.epochs=1", "train.evaluate_at_end=false",
              "model.latent_dim=16"]  # the tests' codes are 16 long, whatever the quickstart's latent size
    vae = _train("pipelines/configs/vae_mnist10k.yaml", common + ["tracking.run_name=serve-vae"])
    if "cgan" in model_kinds():
        cond_kind = "cgan"
        cond = _train("pipelines/configs/dcgan_mnist10k.yaml",
                      common + ["tracking.run_name=serve-cgan", "model.kind=cgan", "model.num_classes=10",
                                "model.g_filters=16", "model.d_filters=16"])
    else:
        cond_kind = "cvae"
        cond = _train("pipelines/configs/vae_mnist10k.yaml",
                      common + ["tracking.run_name=serve-cvae", "model.kind=cvae", "model.num_classes=10"])
    models_dir = root / "models"
    models_dir.mkdir()
    (models_dir / "vae").symlink_to(vae, target_is_directory=True)
    (models_dir / cond_kind).symlink_to(cond, target_is_directory=True)
    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", common)
    images, labels = load_split_arrays(cfg, "test", limit=8)
    return ServingExports(root, models_dir, Path(vae), Path(cond), cond_kind, images[:8], labels[:8])


# -- a real server process ---------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``gen-keras serve`` in its own process group on a free loopback port."""

    def __init__(self, args: list[str], log_path: Path):
        self.port = self.chosen_port = free_port()
        self.args = [GEN_KERAS, "serve", "--port", str(self.port), "--log-level", "warning", *args]
        self.log_path = log_path
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0, ready: bool = True) -> "ServeProcess":
        """Launched and ready. A port this object chose itself can be taken by another process
        (a client's ephemeral port of another test worker) between choosing and binding: then a
        new free port, at most 3 times; a port the test set stays as it is."""
        for attempt in range(3):
            try:
                return self.launch().wait(timeout, ready)
            except RuntimeError as exc:
                if (attempt == 2 or self.port != self.chosen_port
                        or "address already in use" not in str(exc)):
                    raise
                self.port = self.chosen_port = free_port()
                self.args[self.args.index("--port") + 1] = str(self.port)
        raise AssertionError("unreachable")

    def launch(self) -> "ServeProcess":
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env, cwd=ROOT)
        return self

    def wait(self, timeout: float = 120.0, ready: bool = True) -> "ServeProcess":
        """Until /readyz (or /healthz) answers 200."""
        deadline = time.time() + timeout
        path = "/readyz" if ready else "/healthz"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gen-keras serve exited with {self.proc.returncode}:\n"
                                   + self.log_path.read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"{self.url}{path} not 200 within {timeout}s:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None


def request(url: str, method: str = "GET", path: str = "/", body: bytes | dict | None = None,
         headers: dict | None = None, timeout: float = 60.0):
    """One raw HTTP/1.1 exchange → (status, headers dict (lower-case), body bytes)."""
    host, port = url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=timeout)
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


STYLE_TINY = ["model.g_filters=4", "model.d_filters=4", "model.max_filters=16", "model.w_dim=16",
              "model.latent_dim=16", "model.mapping_layers=2"]


def untrained_exports(root: Path, tmp_path_factory, specs: dict, prepare=None) -> dict:
    """Tiny untrained models, ``specs`` ``{name: (config file, overrides)}``, each exported to
    ``root / name``; returns the models by name, read back from their saved ``.keras`` files.
    Built (seeded, so the same weights in every test run), exported and saved once per test run
    (conftest.made_once; the ONNX conversion is the slow part), copied for each caller.
    ``prepare(name, model)`` may set state before the export (a module-level function: its
    name is part of the key, with the specs)."""
    import hashlib

    from gen_keras.artifacts import load_model

    from conftest import made_once

    what = repr([sorted(specs.items()), prepare.__name__ if prepare else None])
    key = "untrained_" + "_".join(specs) + "_" + hashlib.sha256(what.encode()).hexdigest()[:12]
    shared = Path(made_once(tmp_path_factory, key, lambda folder: _make_untrained(folder, specs, prepare)))
    models = {}
    for name in specs:
        shutil.copytree(shared / name, root / name)
        models[name] = load_model(shared / f"{name}.keras")
    return models


def _make_untrained(folder: Path, specs: dict, prepare) -> str:
    import keras

    from gen_keras.artifacts import save_model
    from gen_keras.config_loader import load_config
    from gen_keras.export import export_model
    from gen_keras.models import build_model

    keras.utils.set_random_seed(0)
    for name, (config, overrides) in specs.items():
        model = build_model(load_config(ROOT / "pipelines/configs" / config, overrides).model)
        if prepare is not None:
            prepare(name, model)
        export_model(model, folder / name, name=name)
        save_model(model, folder / f"{name}.keras")
    return str(folder)


def _tracked_w_avg(name, model) -> None:
    w_avg = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    for net in (model.generator, model.generator_ema):
        net.get_layer("truncation").w_avg.assign(w_avg)


def style_export(target: Path, tmp_path_factory):
    """A tiny untrained style-based generator (28x28, 6 style layers) with a non-zero tracked
    w_avg, exported to ``target``; returns the model (for checks against its own networks)."""
    specs = {target.name: ("stylegan_mnist10k.yaml", STYLE_TINY)}
    return untrained_exports(target.parent, tmp_path_factory, specs, _tracked_w_avg)[target.name]


SR_TINY = ["model.g_filters=4", "model.residual_blocks=1"]
CYCLE_TINY = ["model.g_filters=4", "model.residual_blocks=1", "model.d_filters=4"]
TRANSLATORS = {"upscaler": ("sr_l1_sr4.yaml", SR_TINY), "cycle": ("cyclegan_mnistm.yaml", CYCLE_TINY)}


def translator_exports(root: Path, tmp_path_factory) -> dict:
    """Two tiny untrained image-to-image models exported to ``root``: ``upscaler`` (sr_l1, 7x7x1
    → 28x28x1) and ``cycle`` (cyclegan, 28x28x3 both ways); returns the models by name."""
    return untrained_exports(root, tmp_path_factory, TRANSLATORS)
