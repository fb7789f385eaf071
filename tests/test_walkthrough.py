"""A new user's path through the real tools (issue 28, items 1-5 and 7), on ONE real training: the
real ``gen-keras train`` CLI in a fresh folder (a tiny VAE, 2 epochs, the default SQLite store),
then

- its stdout: the end-of-run figures under the names MLflow stores, and the commands that serve
  ITS export, which work when pasted into bash; the README's "From clone to a served digit" block,
  run by bash in the same folder;
- its stderr: none of the libraries' notices (Keras' shuffle warning, numpy's ``np.object``,
  TensorFlow's start-up lines, MLflow's INFO lines); ``--tf-logs`` shows TensorFlow's;
- the printed ``mlflow ui`` command, started for real, driven in Chromium from the landing page:
  "Model training" → the experiment → the run → Model metrics: the per-epoch section first, the
  sample grid whole inside its card, stepped by the slider's arrow keys and by a typed epoch.
  Screenshots go to GEN_KERAS_SCREENSHOT_DIR (or the test's tmp_path); their paths are printed.

The style-based GAN's grappler line and Beam's "apitools" lines have their own short real runs.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

from gen_keras.tracking import logged_config

from conftest import PYTHON, ROOT, chromium_or_skip, free_port, wait_http

GEN_KERAS = str(Path(PYTHON).with_name("gen-keras"))
VENV = Path(PYTHON).parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]
TINY = ["data.limit_train=256", "data.limit_test=64", "train.batch_size=64", "train.epochs=2",
        "train.progress=false", "model.hidden=32", "model.latent_dim=4"]
# What a default (quiet) command line must not show: the libraries' notices.
NOTICES = ["`shuffle=True` was passed", "np.object", "oneDNN custom operations", "absl::InitializeLog",
           "This TensorFlow binary is optimized", "remapper failed", "apitools not found",
           "INFO mlflow", "FutureWarning", "UserWarning"]


def cli_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GEN_KERAS_TF_LOGS",
                                                            "TF_CPP_MIN_LOG_LEVEL")}
    return {**env, "PYTHONUNBUFFERED": "1", "GEN_KERAS_CACHE": str(cache)}


def run_cli(args, cwd: Path, cache: Path, timeout: int = 600, hidden: Path | None = None) -> subprocess.CompletedProcess:
    """The real command line; ``hidden``: the file that receives what the quiet mode hid."""
    env = {**cli_env(cache), **({"GEN_KERAS_HIDDEN_LOG": str(hidden)} if hidden else {})}
    return subprocess.run([GEN_KERAS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sets(items):
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, data_cache):
    """``gen-keras train`` of the default VAE config from a fresh folder holding only ``.venv``."""
    cwd = tmp_path_factory.mktemp("clone")
    (cwd / ".venv").symlink_to(VENV)
    r = run_cli(["train", "--config", str(ROOT / "pipelines/configs/vae_mnist10k.yaml"), *sets(TINY)],
                cwd, data_cache, hidden=cwd / "hidden.log")
    assert r.returncode == 0, r.stderr[-3000:]
    run_id = re.search(r"MLflow run id ([0-9a-f]{32})", r.stdout).group(1)
    return cwd, r, run_id


class Background:
    """A command started in its own process group (and stopped with it)."""

    def __init__(self, args, cwd: Path, env: dict, log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_pasted(block: str, cwd: Path, cache: Path, tmp: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``block`` as a user pastes it into bash in ``cwd``, the server's port 8000 swapped for a free
    one; every process it leaves behind (the server it started with ``&``) is stopped after."""
    port = free_port()
    script = block.replace("8000", str(port))
    assert script != block, "the block names no port"
    out, err = tmp / "pasted.out", tmp / "pasted.err"
    with open(out, "w") as o, open(err, "w") as e:  # (the server it starts keeps pipes open)
        proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=cli_env(cache), stdout=o, stderr=e,
                                start_new_session=True)
    try:
        proc.wait(timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server the block left running
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text()), port


def assert_digits_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path.read_bytes()[:200]
    with Image.open(path) as im:  # 16 digits of 28 px in a 4 x 4 grid, 2 px apart
        assert im.size == (4 * 30 + 2, 4 * 30 + 2), im.size


# -- item 4: one name per figure; item 2: the commands printed for ITS export ------------------------
def test_the_summary_prints_the_names_mlflow_stores(first_run):
    cwd, r, run_id = first_run
    summary = r.stdout[r.stdout.index("finished in"):r.stdout.index("samples per epoch:")]
    printed = dict(re.findall(r"^  (\S+): (\S+)$", summary, re.MULTILINE))
    stored = MlflowClient(f"sqlite:///{cwd / 'mlflow' / 'mlflow.db'}").get_run(run_id).data.metrics
    final = {k: v for k, v in stored.items() if k.split("/")[0] in ("test", "eval")}
    assert printed.keys() == final.keys() and any(k.startswith("eval/") for k in printed), (printed, final)
    for name, text in printed.items():
        assert float(text) == pytest.approx(final[name], rel=1e-5, abs=1e-9), name
    assert "eval/classes_covered: " in summary and "classes_covered: 10.0000" not in summary


def test_the_printed_commands_serve_its_export_when_pasted(first_run, data_cache, tmp_path):
    cwd, r, _ = first_run
    block = r.stdout[r.stdout.index("(paste as a block):\n") + len("(paste as a block):\n"):]
    block = "\n".join(line.strip() for line in block.splitlines()[:3])
    assert "/outputs/exports/vae-" in block and "curl -f" in block, block
    done, _ = run_pasted(block, cwd, data_cache, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    name = re.search(r"models/(vae-[0-9-]+):generate", block).group(1)
    assert_digits_png(cwd / f"{name}.png")


def test_the_readme_block_serves_a_digit_when_pasted(first_run, data_cache, tmp_path):
    """The README block, after a later training of another kind wrote its own export."""
    cwd, _, _ = first_run
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From clone to a served digit"):]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    decoy = cwd / "outputs" / "exports" / "srgan-20990101-000000"  # `ls | head -1` picked it
    shutil.copytree(next((cwd / "outputs" / "exports").glob("vae-*")), decoy)
    try:
        done, _ = run_pasted(block, cwd, data_cache, tmp_path)
    finally:
        shutil.rmtree(decoy)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "serving outputs/exports/vae-" in done.stdout, done.stdout
    assert_digits_png(cwd / "digits.png")


def test_the_run_has_its_whole_config_as_config_yaml_and_no_params(first_run):
    cwd, _, run_id = first_run
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow' / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.data.params == {}  # MLflow 3.17 prints every param above each picture of a series
    assert {"gen_keras.kind", "gen_keras.dataset"} <= set(run.data.tags)
    record = logged_config(client, run_id)
    assert record["model.kind"] == "vae" and record["model.latent_dim"] == "4" and record["train.epochs"] == "2"
    assert record["derived.replicas"] == "1" and record["version.tensorflow"].startswith("2.")
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


# -- item 5: quiet by default, TensorFlow's notices with --tf-logs --------------------------------
def test_training_shows_no_library_notices(first_run):
    cwd, r, _ = first_run
    for notice in NOTICES:
        assert notice not in r.stderr, (notice, r.stderr[-3000:])
    hidden = (cwd / "hidden.log").read_text()  # they were there, and were hidden
    # (Keras' "`shuffle=True` was passed" is no longer there to hide: training passes shuffle=False.)
    for notice in ("np.object", "oneDNN custom operations"):
        assert notice in hidden, (notice, hidden[-3000:])


def test_a_style_based_gan_and_a_batch_job_show_no_library_notices(first_run, data_cache, tmp_path):
    """The style-based GAN's grappler "remapper failed" line (an optimisation pass skipped, logged
    at ERROR level) and Beam's "apitools not found" / worker start-up lines, from real runs."""
    cwd, _, _ = first_run
    gan = run_cli(["train", "--config", str(ROOT / "pipelines/configs/stylegan_mnist10k.yaml"),
                   *sets(["data.limit_train=128", "data.limit_test=64", "train.batch_size=64", "train.epochs=1",
                          # narrow networks (the notices come from the graph's kind, not its width)
                          "model.g_filters=4", "model.d_filters=4", "model.max_filters=16", "model.w_dim=16",
                          "model.latent_dim=16", "model.mapping_layers=2",
                          "train.progress=false", "train.evaluate_at_end=false", "train.export_at_end=false",
                          f"tracking.outputs_dir={tmp_path / 'gan'}"])],
                  cwd, data_cache, hidden=tmp_path / "gan_hidden.log")
    assert gan.returncode == 0, gan.stderr[-3000:]
    export = next((cwd / "outputs" / "exports").glob("vae-*"))
    batch = run_cli(["batch", "generate", "--export", str(export), "--count", "400", "--chunk-size", "100",
                     "--out", f"{tmp_path / 'gen'}/", "--", "--direct_num_workers=2"],
                    cwd, data_cache, hidden=tmp_path / "batch_hidden.log")
    assert batch.returncode == 0, batch.stderr[-3000:]
    for r in (gan, batch):
        for notice in NOTICES:
            assert notice not in r.stderr, (notice, r.stderr[-3000:])
    assert "remapper failed" in (tmp_path / "gan_hidden.log").read_text()
    assert "apitools not found" in (tmp_path / "batch_hidden.log").read_text()
    # item 7: no rate over ~0 s (the first lines of a worker), and the output path printed once
    assert not re.search(r"\d{7,}/s", batch.stderr), batch.stderr
    assert f"output: {tmp_path / 'gen'}/part-*.parquet" in batch.stdout and "//" not in batch.stdout


def test_tf_logs_shows_tensorflows_notices(first_run, data_cache, tmp_path):
    cwd, _, _run_id = first_run
    model = next((cwd / "outputs" / "models").glob("*/model.keras"))
    args = ["export", "--model", str(model), "--out", str(tmp_path / "again")]
    loud = run_cli(["--tf-logs", *args], cwd, data_cache)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "oneDNN custom operations" in loud.stderr or "absl::InitializeLog" in loud.stderr, loud.stderr[-3000:]
    assert "np.object" in loud.stderr  # keras' tf2onnx patch, at the ONNX export


# -- item 1: the MLflow UI, from its landing page to the per-epoch grid -------------------------------
GRID_IMAGES = """(key) => Array.from(document.images).filter(i => decodeURIComponent(i.src).includes('images/' + key + '+step+'))
  .map(img => {
    const r = img.getBoundingClientRect();
    let clip = {top: 0, bottom: innerHeight, left: 0, right: innerWidth};  // what every scrolling or
    for (let e = img.parentElement; e; e = e.parentElement) {              // clipping box leaves of it
      const cs = getComputedStyle(e);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') {
        const b = e.getBoundingClientRect();
        clip = {top: Math.max(clip.top, b.top), bottom: Math.min(clip.bottom, b.bottom),
                left: Math.max(clip.left, b.left), right: Math.min(clip.right, b.right)};
      }
    }
    const seen = Math.max(0, Math.min(r.bottom, clip.bottom) - Math.max(r.top, clip.top)) *
                 Math.max(0, Math.min(r.right, clip.right) - Math.max(r.left, clip.left));
    const step = decodeURIComponent(img.src).match(/\\+step\\+(\\d+)\\+/);
    return {width: r.width, height: r.height, top: r.top, left: r.left, complete: img.complete,
            natural: img.naturalWidth, visible: seen / (r.width * r.height), step: step && +step[1]};
  })"""
SECTIONS = """() => Array.from(document.querySelectorAll('*')).filter(e => e.children.length === 0
  && /^\\(\\d+\\)$/.test(e.textContent.trim())).map(e => e.parentElement.textContent.trim().replace(/\\(\\d+\\)$/, ''))"""


@pytest.fixture(scope="module")
def mlflow_ui(first_run, tmp_path_factory):
    """The ``mlflow ui`` command the end of training printed, on a free port instead of 5000."""
    cwd, r, _ = first_run
    hint = r.stdout[r.stdout.index("MLflow UI: ") + len("MLflow UI: "):]
    command, link = hint.split("\n")[0], hint.split("then open ")[1].split()[0]
    port = free_port()
    env = {**cli_env(Path("/nonexistent")), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    ui = Background([*command.replace("--port 5000", f"--port {port}").split(), "--workers", "1"], cwd, env,
                    tmp_path_factory.mktemp("ui") / "mlflow_ui.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, ui.proc)
        yield f"http://127.0.0.1:{port}", link.replace(":5000", f":{port}")
    finally:
        ui.stop()


def shot(page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def grid_shown(page, key: str, step: int, timeout_s: float = 30) -> dict:
    """The one picture of the image series ``key`` at ``step``, once loaded."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = [g for g in page.evaluate(GRID_IMAGES, key) if g["complete"] and g["natural"] > 0]
        if len(found) == 1 and found[0]["step"] == step:
            return found[0]
        page.wait_for_timeout(250)
    raise AssertionError(f"{key} at step {step} not shown: {page.evaluate(GRID_IMAGES, key)}")


def test_mlflow_ui_from_landing_page_to_the_whole_sample_grid(first_run, mlflow_ui, tmp_path):
    cwd, _, run_id = first_run
    base, link = mlflow_ui
    run_name = MlflowClient(f"sqlite:///{cwd / 'mlflow' / 'mlflow.db'}").get_run(run_id).info.run_name
    shots = Path(os.environ.get("GEN_KERAS_SCREENSHOT_DIR", tmp_path))
    binary, sync_playwright = chromium_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})  # a fresh browser profile
            page.goto(base + "/")
            page.get_by_text("gen-keras", exact=True).first.wait_for(timeout=90_000)  # the experiment
            # MLflow 3.17 opens experiments in the view of its sidebar switch (GenAI in a fresh
            # browser; mlflow/mlflow issue 24498): the README says to pick "Model training" once.
            page.get_by_role("button", name="Model training").first.click()
            page.get_by_text("gen-keras", exact=True).first.click()
            page.get_by_text(run_name).first.wait_for(timeout=60_000)  # the runs table
            assert "workflowType=genai" not in page.url and "/overview" not in page.url, page.url
            shot(page, shots, "mlflow_1_experiment")
            page.get_by_text(run_name).first.click()
            page.get_by_role("tab", name="Model metrics").first.click()
            page.get_by_text("val_loss", exact=True).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            shot(page, shots, "mlflow_2_model_metrics")
            sections = page.evaluate(SECTIONS)
            assert sections[0] == "epoch" and {"eval", "test"} <= set(sections), sections

            # The grid of epoch 0 (the untrained model), its card scrolled to the middle of the view.
            title = page.get_by_text("epoch/samples", exact=True).first
            for _ in range(20):  # the UI renders a card once it comes near the view: scroll down
                if title.count():
                    break
                page.mouse.move(600, 600)
                page.mouse.wheel(0, 300)
                page.wait_for_timeout(300)
            title.evaluate("e => e.scrollIntoView({block: 'center'})")
            first = grid_shown(page, "epoch~samples", 0)
            shot(page, shots, "mlflow_3_samples_epoch0")
            assert first["visible"] == 1.0 and first["width"] >= 200, first  # whole, not a sliver
            assert 0 <= first["top"] and first["top"] + first["height"] <= 900, first

            # Step with the slider's arrow keys, then type an epoch (the UI takes it on Tab).
            card = page.locator("div", has=page.get_by_text("epoch/samples", exact=True)).filter(
                has=page.locator("input[type=number]")).last
            card.get_by_role("slider").first.focus()
            page.keyboard.press("ArrowRight")
            moved = grid_shown(page, "epoch~samples", 1)
            assert moved["visible"] == 1.0, moved
            typed = card.locator("input[type=number]").first
            typed.fill("2")
            typed.press("Tab")
            last = grid_shown(page, "epoch~samples", 2)
            shot(page, shots, "mlflow_4_samples_epoch2")
            assert last["visible"] == 1.0 and last["width"] == first["width"], last
            rec = page.evaluate(GRID_IMAGES, "epoch~reconstructions")
            assert rec and all(g["visible"] == 1.0 for g in rec), rec

            # The link the end of training printed opens the same run in the "Model training" view.
            fresh = browser.new_page(viewport={"width": 1400, "height": 900})
            fresh.goto(link)
            fresh.get_by_text(run_name).first.wait_for(timeout=60_000)
            assert "Model metrics" in fresh.inner_text("body")
        finally:
            browser.close()


# -- item 7: the command line's slips ------------------------------------------------------------------
def test_set_with_a_space_says_how_to_write_it(tmp_path, data_cache):
    r = run_cli(["train", "--config", str(ROOT / "pipelines/configs/vae_mnist10k.yaml"), "--set", "train.epochs",
                 "1"], tmp_path, data_cache, timeout=60)
    assert r.returncode == 2 and "write '--set train.epochs=1'" in r.stderr, r.stderr
    assert "unrecognized arguments" not in r.stderr


def test_a_missing_config_lists_the_shipped_ones(tmp_path, data_cache):
    r = run_cli(["train", "--config", "pipelines/configs/vae_mnist.yaml"], tmp_path, data_cache, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"did you mean {ROOT / 'pipelines/configs/vae_mnist10k.yaml'}?" in r.stderr, r.stderr
    assert "stylegan_mnist10k.yaml" in r.stderr and "Traceback" not in r.stderr


def test_batch_without_beam_names_the_clone_install_line(monkeypatch):
    import importlib.util

    from gen_keras.cli import main
    from gen_keras.commands import batch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "apache_beam" else real(name, *a))
    hint = batch.install_batch_hint()
    assert hint == f"{Path(PYTHON).with_name('pip')} install -e '{ROOT}[batch]'"
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/pip install -e '.[batch]'" in readme[readme.index("## Batch jobs"):]
    assert main(["batch", "generate", "--export", "x", "--out", "y"]) == 2
