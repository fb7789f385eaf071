"""The web page in a real headless Chromium (Debian's package, driven by Playwright) against a
real ``gen-keras serve`` process: the grid appears, is exactly the server's PNG for the seed,
changes with the seed and the class, and the interpolation slider changes the frame.

Skips without a browser, except when GEN_KERAS_REQUIRE_BROWSER=1 (CI), where that fails.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serving_fixtures import ServeProcess, request, serving_exports  # noqa: F401

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]

GRID_PIXELS = """() => {
  const img = document.getElementById('grid');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  return {w: c.width, h: c.height, red: Array.from(d.filter((_, i) => i % 4 === 0))};
}"""
FRAME_PIXELS = """() => {
  const c = document.getElementById('frame');
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0));
}"""


def _grid_ready(seed: int) -> str:
    return (f"() => {{ const i = document.getElementById('grid'); return !i.hidden && i.complete && "
            f"i.naturalWidth > 0 && i.dataset.seed === '{seed}' && "
            f"document.getElementById('status').textContent === 'ready'; }}")


def _browser_or_skip() -> tuple[str, object]:
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


@pytest.fixture(scope="module")
def server(serving_exports, tmp_path_factory):
    proc = ServeProcess(["--models", str(serving_exports.models_dir)],
                        tmp_path_factory.mktemp("browser") / "serve.log").start()
    yield proc
    proc.stop()


def test_page_generates_and_interpolates(server, serving_exports, tmp_path):
    binary, sync_playwright = _browser_or_skip()
    console_errors = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=binary,
                                                       headless=True, args=FLAGS)
        try:
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
            page.goto(server.url + "/")
            page.wait_for_function(_grid_ready(7), timeout=60_000)
            first = page.evaluate(GRID_PIXELS)
            # exactly the server's grid for the default request (first model, 16 images, seed 7)
            shown = page.input_value("#model")
            assert shown in ("vae", serving_exports.cond_kind)
            png = request(server.url, "POST", f"/v1/models/{shown}:generate", {"n": 16, "seed": 7, "format": "png"})[2]
            want = np.asarray(Image.open(io.BytesIO(png)))
            assert (first["h"], first["w"]) == want.shape == (122, 122)
            assert np.array_equal(np.asarray(first["red"]).reshape(want.shape), want)

            page.fill("#seed", "8")
            page.wait_for_function(_grid_ready(8), timeout=30_000)
            second = page.evaluate(GRID_PIXELS)
            assert second["red"] != first["red"]
            page.fill("#seed", "7")
            page.wait_for_function(_grid_ready(7), timeout=30_000)
            assert page.evaluate(GRID_PIXELS)["red"] == first["red"]  # the same seed, the same digits

            # the slider walks between the two seeds
            page.wait_for_function("() => document.getElementById('frame').dataset.frame === '0'", timeout=30_000)
            start = page.evaluate(FRAME_PIXELS)
            page.eval_on_selector("#slider", "s => { s.value = s.max; s.dispatchEvent(new Event('input')); }")
            page.wait_for_function("() => document.getElementById('frame').dataset.frame === '15'")
            end = page.evaluate(FRAME_PIXELS)
            assert len(start) == 28 * 28 and end != start

            # a conditional model shows the class picker, and the class changes the grid
            cond = serving_exports.cond_kind
            page.select_option("#model", cond)
            page.wait_for_selector("#class-field:not([hidden])")
            page.wait_for_function(f"() => document.getElementById('grid-caption').textContent.startsWith('{cond}')")
            page.wait_for_function(_grid_ready(7), timeout=30_000)
            all_classes = page.evaluate(GRID_PIXELS)
            page.select_option("#label", "3")
            page.wait_for_function("() => document.getElementById('grid-caption').textContent.endsWith('class 3')",
                                   timeout=30_000)
            page.wait_for_function(_grid_ready(7), timeout=30_000)
            assert page.evaluate(GRID_PIXELS)["red"] != all_classes["red"]
            page.select_option("#model", "vae")
            page.wait_for_function("() => document.getElementById('grid-caption').textContent.startsWith('vae')")
            page.wait_for_function(_grid_ready(7), timeout=30_000)
            assert page.is_hidden("#error") and page.is_hidden("#class-field")
            shot = Path(os.environ.get("GEN_KERAS_SCREENSHOT_DIR", tmp_path)) / "serving_page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 5000
        finally:
            context.close()
    assert not console_errors, console_errors
