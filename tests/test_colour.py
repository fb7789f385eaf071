"""Colour and 64x64 end to end (issue 16, part 6): the shipped vae_shapes3d and dcgan_shapes3d
configs train for real on a small shapes3d subset, log colour sample grids, export with ONNX parity
(<= 1e-4) and are served by ``gen-keras serve``, whose page shows their colour images (Chromium)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from serving_fixtures import ServeProcess, request


@pytest.fixture(scope="module")
def colour_runs(tmp_path_factory, data_cache):
    from gen_keras.config_loader import load_config
    from gen_keras.training import train

    root = tmp_path_factory.mktemp("colour")
    runs = {}
    # The shipped 64x64x3 configs with narrow networks: colour flows the same at any width.
    narrow = {"vae_shapes3d": ["model.filters=8", "model.hidden=32"],
              "dcgan_shapes3d": ["model.g_filters=8", "model.d_filters=8"]}
    for name in ("vae_shapes3d", "dcgan_shapes3d"):
        cfg = load_config(ROOT / "pipelines/configs" / f"{name}.yaml", [
            *narrow[name], "data.dataset=shapes3d:2000", "data.limit_train=256", "data.limit_test=128", "train.epochs=1",
            "train.progress=false", "train.evaluate_at_end=false", f"tracking.outputs_dir={root / 'out'}",
            f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"tracking.run_name={name}"])
        runs[name] = train(cfg)
    models = root / "models"
    models.mkdir()
    for name, result in runs.items():
        (models / name).symlink_to(result.export_dir, target_is_directory=True)
    return runs, models


def test_colour_models_train_export_and_sample_in_colour(colour_runs):
    from gen_keras.exported.reader import open_export

    runs, _ = colour_runs
    for name, result in runs.items():
        losses = [v[-1] for k, v in result.history.items() if "loss" in k]
        assert losses and np.isfinite(losses).all(), result.history
        manifest = json.loads((result.export_dir / "manifest.json").read_text())
        assert manifest["image_shape"] == [64, 64, 3]
        ops = manifest["endpoints"]
        # images: absolute; the VAE's score (a sum over 12,288 pixel terms, ~1e4): relative to its scale
        assert max(ops[op]["onnx_parity_max_abs_diff"] for op in ops if op != "score") <= 1e-4
        assert max(op["onnx_parity_max_rel_diff"] for op in ops.values()) <= 1e-4
        reader = open_export(result.export_dir)
        images = reader.generate(reader.sample_latent(4, 0))
        assert images.shape == (4, 64, 64, 3)
        grids = sorted(result.samples_dir.rglob("*.png"))
        assert grids, f"{name}: no sample grid"
        pixels = np.asarray(Image.open(grids[-1]).convert("RGB")).astype(int)
        assert pixels.shape[2] == 3


def test_page_shows_the_colour_models_images(colour_runs, tmp_path):
    from test_serving_browser import FLAGS, _browser_or_skip, _grid_ready

    _, models = colour_runs
    server = ServeProcess(["--models", str(models)], tmp_path / "serve.log").start()
    binary, sync_playwright = _browser_or_skip()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=binary, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/")
            page.wait_for_function("() => document.getElementById('model').options.length === 2", timeout=60_000)
            for name in ("dcgan_shapes3d", "vae_shapes3d"):
                if page.input_value("#model") != name:
                    page.select_option("#model", name)
                page.wait_for_function(f"() => document.getElementById('grid-caption').textContent.startsWith('{name} ')",
                                       timeout=60_000)
                page.wait_for_function(_grid_ready(7), timeout=60_000)
                px = page.evaluate("""() => { const img = document.getElementById('grid');
                  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
                  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                  return {w: c.width, h: c.height, rgb: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)}; }""")
                shown = np.asarray(px["rgb"], np.uint8).reshape(px["h"], px["w"], 4)[..., :3]
                status, _, png = request(server.url, "POST", f"/v1/models/{name}:generate",
                                         {"n": 16, "seed": 7, "format": "png"})
                assert status == 200
                want = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                assert np.array_equal(shown, want) and shown.shape == (2 + 4 * 66, 2 + 4 * 66, 3)
                assert "64×64×3" in page.text_content("#model-info")
            page.screenshot(path=str(tmp_path / "colour_page.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
