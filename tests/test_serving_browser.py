"""The web page and /docs in a real headless Chromium (Debian's package, driven by Playwright)
against a real ``gen-keras serve`` process (started with ``--max-n 36``, so that asking the page for
64 images gets a real server error).

The page: the grid is exactly the server's PNG for the seed and changes with the seed and the class;
an error sits beside the control that caused it, the last result is marked stale and the status is
not "ready" meanwhile; an empty or negative seed is such an error (never a silent 0); the Generate
panel keeps its place when the class control changes; the interpolation strip shows every frame and
play walks through them; a digit drawn on the canvas (mouse or touch) or uploaded is reconstructed,
and the picture shown is the server's PNG for exactly the image sent; the download buttons give the
server's PNGs. /docs: Swagger UI lists the operations with nothing fetched from outside 127.0.0.1.
Screenshots go to the test's tmp_path (or GEN_KERAS_SCREENSHOT_DIR), and their paths are printed.

Skips without a browser, except when GEN_KERAS_REQUIRE_BROWSER=1 (CI), where that fails.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import chromium_or_skip
from serving_fixtures import ServeProcess, request, serving_exports, style_export, translator_exports  # noqa: F401

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage"]
MAX_N = 36

IMG_PIXELS = """(id) => {
  const img = document.getElementById(id);
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  return {w: c.width, h: c.height, red: Array.from(d.filter((_, i) => i % 4 === 0))};
}"""
CANVAS_PIXELS = """(el) => Array.from(el.getContext('2d').getImageData(0, 0, el.width, el.height).data
                                  .filter((_, i) => i % 4 === 0))"""
IDLE = "() => document.getElementById('status').dataset.state === 'ready'"


def _grid_ready(seed: int) -> str:
    return (f"() => {{ const i = document.getElementById('grid'); return !i.hidden && i.complete && "
            f"i.naturalWidth > 0 && i.dataset.seed === '{seed}' && "
            f"document.getElementById('status').dataset.state === 'ready'; }}")


_browser_or_skip = chromium_or_skip  # (test_colour and test_export_contract import it by this name)


@pytest.fixture(scope="module")
def server(serving_exports, tmp_path_factory):
    proc = ServeProcess(["--models", str(serving_exports.models_dir), "--max-n", str(MAX_N)],
                        tmp_path_factory.mktemp("browser") / "serve.log").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for the module (touch enabled, so taps reach the drawing canvas)."""
    binary, sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=binary, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900}, has_touch=True, accept_downloads=True)
        try:
            yield context
        finally:
            context.close()


class Watched:
    """A page whose console errors and requests are recorded."""

    def __init__(self, context, base: str):
        self.page = context.new_page()
        self.base = base
        self.errors, self.outside = [], []
        self.allowed = []  # console errors a test provokes on purpose (Chromium logs every 4xx)
        self.page.on("console", lambda m: m.type == "error" and not any(a in m.text for a in self.allowed)
                     and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)

    def _request(self, r):
        if not (r.url.startswith(self.base + "/") or r.url.startswith(("data:", "blob:"))):
            self.outside.append(r.url)

    def close(self):
        self.page.close()
        assert not self.errors, self.errors
        assert not self.outside, f"requests left 127.0.0.1: {self.outside}"


@pytest.fixture
def watched(browser, server):
    w = Watched(browser, server.url)
    yield w
    w.close()


@pytest.fixture
def page(watched):
    return watched.page


def shot(page, tmp_path: Path, name: str, **kw) -> Path:
    path = Path(os.environ.get("GEN_KERAS_SCREENSHOT_DIR", tmp_path)) / f"{name}.png"
    page.screenshot(path=str(path), **kw)
    assert path.stat().st_size > 3000
    print(f"screenshot: {path}")
    return path


def server_png(server, model: str, op: str, body: dict) -> np.ndarray:
    status, headers, png = request(server.url, "POST", f"/v1/models/{model}:{op}", {**body, "format": "png"})
    assert status == 200, png
    return np.asarray(Image.open(io.BytesIO(png)))


def shown(page, img_id: str) -> np.ndarray:
    px = page.evaluate(IMG_PIXELS, img_id)
    return np.asarray(px["red"], dtype="uint8").reshape(px["h"], px["w"])


def open_model(page, server, model: str, seed: int = 7):
    if not page.url.startswith(server.url):
        page.goto(server.url + "/")
        page.wait_for_function("() => document.getElementById('model').options.length > 0", timeout=60_000)
    if page.input_value("#model") != model:
        page.select_option("#model", model)
    page.wait_for_function(f"() => document.getElementById('grid-caption').textContent.startsWith('{model} ')",
                           timeout=60_000)
    page.wait_for_function(_grid_ready(seed), timeout=60_000)


# -- generate --------------------------------------------------------------------------------------------
def test_grid_is_the_servers_png_and_follows_seed_and_class(page, server, serving_exports, tmp_path):
    open_model(page, server, "vae")
    first = shown(page, "grid")
    assert np.array_equal(first, server_png(server, "vae", "generate", {"n": 16, "seed": 7}))
    assert first.shape == (122, 122)
    page.fill("#seed", "8")
    page.wait_for_function(_grid_ready(8), timeout=30_000)
    assert not np.array_equal(shown(page, "grid"), first)
    page.fill("#seed", "7")
    page.wait_for_function(_grid_ready(7), timeout=30_000)
    assert np.array_equal(shown(page, "grid"), first)  # the same seed, the same digits
    assert page.is_disabled("#label")  # the VAE is unconditional

    cond = serving_exports.cond_kind
    open_model(page, server, cond)
    assert page.is_enabled("#label")
    all_classes = shown(page, "grid")
    page.select_option("#label", "3")
    page.wait_for_function("() => document.getElementById('grid-caption').textContent.endsWith('class 3')",
                           timeout=30_000)
    page.wait_for_function(_grid_ready(7), timeout=30_000)
    three = shown(page, "grid")
    assert not np.array_equal(three, all_classes)
    assert np.array_equal(three, server_png(server, cond, "generate", {"n": 16, "seed": 7, "label": 3}))
    shot(page, tmp_path, "page_conditional_class3", full_page=True)


def test_errors_sit_beside_their_control_and_the_old_result_turns_stale(page, watched, server, tmp_path):
    watched.allowed.append("the server responded with a status of 400")
    open_model(page, server, "vae")
    before = shot(page, tmp_path, "error_before", full_page=True)
    assert page.get_attribute("#grid-figure", "class") == "result"

    def expect_seed_error(value: str, words: str):
        page.fill("#seed", value)
        page.wait_for_function(f"() => document.getElementById('seed-error').textContent.includes('{words}')")
        message = page.text_content("#seed-error")
        assert words in message, message
        # beside the control: inside the seed's field, just under the input
        assert page.evaluate("() => document.getElementById('seed-error').closest('.field')"
                             ".contains(document.getElementById('seed'))")
        field, error = page.locator("#seed").bounding_box(), page.locator("#seed-error").bounding_box()
        assert 0 <= error["y"] - (field["y"] + field["height"]) < 20 and abs(error["x"] - field["x"]) < 20
        assert page.get_attribute("#seed", "aria-invalid") == "true"
        # the old grid stays, marked stale; the status says error, never ready
        assert "stale" in page.get_attribute("#grid-figure", "class")
        assert page.is_visible("#grid-figure .stale-note")
        assert page.evaluate("() => getComputedStyle(document.getElementById('grid')).opacity") == "0.3"
        assert page.text_content("#status") == f"error: {message}"
        page.wait_for_timeout(400)  # nothing pending may turn it back to "ready"
        assert page.get_attribute("#status", "data-state") == "error"
        return message

    expect_seed_error("", "the seed is empty")  # never silently 0
    shot(page, tmp_path, "error_empty_seed", full_page=True)
    expect_seed_error("-3", "the seed must be ≥ 0, not -3")
    after = shot(page, tmp_path, "error_negative_seed", full_page=True)
    expect_seed_error("2.5", "the seed must be a whole number, not 2.5")
    assert page.get_attribute("#grid", "data-seed") == "7"  # the grid on screen is still seed 7's

    # a server error lands beside the control its message names
    page.fill("#seed", "7")
    page.wait_for_function(_grid_ready(7), timeout=30_000)
    page.select_option("#n", "64")
    page.wait_for_function("() => document.getElementById('n-error').textContent !== ''", timeout=30_000)
    assert page.text_content("#n-error") == f"n=64 is over the limit of {MAX_N} images per request"
    assert page.get_attribute("#status", "data-state") == "error"
    assert "stale" in page.get_attribute("#grid-figure", "class")
    shot(page, tmp_path, "error_from_server", full_page=True)
    page.select_option("#n", "16")
    page.wait_for_function(_grid_ready(7), timeout=30_000)
    assert page.text_content("#n-error") == "" and page.text_content("#seed-error") == ""
    assert page.get_attribute("#grid-figure", "class") == "result"
    assert page.text_content("#status") == "ready"
    assert page.query_selector("#error") is None  # no error bar below the fold any more
    print(f"before/after: {before} → {after}")


def test_generate_panel_keeps_its_place_when_the_class_control_changes(page, server, serving_exports, tmp_path):
    open_model(page, server, "vae")
    boxes = {"vae": (page.locator("#gen-panel").bounding_box(), page.locator("#grid").bounding_box())}
    shot(page, tmp_path, "class_unconditional", clip={"x": 0, "y": 0, "width": 1280, "height": 620})
    cond = serving_exports.cond_kind
    open_model(page, server, cond)
    boxes["all"] = (page.locator("#gen-panel").bounding_box(), page.locator("#grid").bounding_box())
    page.select_option("#label", "5")
    page.wait_for_function("() => document.getElementById('grid-caption').textContent.endsWith('class 5')",
                           timeout=30_000)
    page.wait_for_function(_grid_ready(7), timeout=30_000)
    boxes["5"] = (page.locator("#gen-panel").bounding_box(), page.locator("#grid").bounding_box())
    shot(page, tmp_path, "class_5", clip={"x": 0, "y": 0, "width": 1280, "height": 620})
    assert boxes["vae"] == boxes["all"] == boxes["5"], boxes


# -- interpolate ---------------------------------------------------------------------------------------
def test_strip_shows_every_frame_and_play_walks_through_them(page, server, tmp_path):
    open_model(page, server, "vae")
    page.wait_for_function("() => document.getElementById('strip').children.length === 16", timeout=30_000)
    frames = page.locator("#strip canvas")
    assert frames.count() == 16
    # each strip frame is the frame the slider shows at that position
    strip = [frames.nth(i).evaluate(CANVAS_PIXELS) for i in range(16)]
    assert all(len(f) == 28 * 28 for f in strip) and strip[0] != strip[15]
    for i in (0, 9, 15):
        page.eval_on_selector("#slider", f"s => {{ s.value = '{i}'; s.dispatchEvent(new Event('input')); }}")
        page.wait_for_function(f"() => document.getElementById('frame').dataset.frame === '{i}'")
        assert page.eval_on_selector("#frame", CANVAS_PIXELS) == strip[i]
        assert "current" in frames.nth(i).get_attribute("class")
    frames.nth(4).click()  # a click on the strip selects that frame
    page.wait_for_function("() => document.getElementById('frame').dataset.frame === '4'")

    page.click("#play")
    seen = set()
    for _ in range(40):
        seen.add(page.get_attribute("#frame", "data-frame"))
        if len(seen) >= 4:
            break
        page.wait_for_timeout(100)
    assert len(seen) >= 4, seen  # the frame advances by itself
    assert page.get_attribute("#play", "aria-pressed") == "true"
    shot(page, tmp_path, "interpolate_playing", full_page=True)
    page.click("#play")
    paused = page.get_attribute("#frame", "data-frame")
    page.wait_for_timeout(500)
    assert page.get_attribute("#frame", "data-frame") == paused
    assert page.text_content("#play").strip().endswith("Play")


# -- reconstruct ---------------------------------------------------------------------------------------
def _reconstruction(page, server, action) -> tuple[dict, np.ndarray]:
    """Do ``action``; → the :reconstruct body the page sent, and the picture it then shows."""
    with page.expect_request(lambda r: r.url.endswith("/v1/models/vae:reconstruct")) as sent:
        action()
    body = json.loads(sent.value.post_data)
    page.wait_for_function("() => { const i = document.getElementById('recon'); return !i.hidden && i.complete "
                           "&& i.naturalWidth > 0; }", timeout=30_000)
    page.wait_for_function(IDLE, timeout=30_000)
    picture = shown(page, "recon")
    assert np.array_equal(picture, server_png(server, "vae", "reconstruct", body))
    return body, picture


def test_drawing_or_uploading_a_digit_shows_its_reconstruction(page, server, serving_exports, tmp_path):
    open_model(page, server, serving_exports.cond_kind)
    if serving_exports.cond_kind == "cgan":
        assert page.is_hidden("#recon-panel")  # a GAN has no encoder
    open_model(page, server, "vae")
    assert page.is_visible("#recon-panel")
    canvas = page.locator("#draw")
    canvas.scroll_into_view_if_needed()
    shot(page, tmp_path, "reconstruct_before", full_page=True)
    box = canvas.bounding_box()

    def draw_a_seven():
        x, y, w = box["x"], box["y"], box["width"]
        page.mouse.move(x + .25 * w, y + .2 * w)
        page.mouse.down()
        for px, py in ((.75, .2), (.5, .85)):
            page.mouse.move(x + px * w, y + py * w, steps=12)
        page.mouse.up()

    body, first = _reconstruction(page, server, draw_a_seven)
    image = np.asarray(body["images"], dtype="float32")
    assert image.shape == (1, 28, 28, 1) and body["format"] == "png"
    assert image.min() >= 0 and image.max() <= 1 and image.max() > 0.9 and (image > 0.5).mean() < 0.3
    assert np.array_equal(np.asarray(page.eval_on_selector("#recon-input", CANVAS_PIXELS)).reshape(28, 28),
                          np.round(image[0, ..., 0] * 255).astype(int))  # "as sent" is what was sent
    shot(page, tmp_path, "reconstruct_drawn", full_page=True)

    # a finger: a tap adds a dot and asks again
    body, _ = _reconstruction(page, server, lambda: page.touchscreen.tap(box["x"] + box["width"] * .8,
                                                                         box["y"] + box["width"] * .8))
    assert not np.array_equal(np.asarray(body["images"], dtype="float32"), image)

    # an upload: a real test digit comes out as itself (to within resampling); a dark-on-light one is inverted
    digit = serving_exports.test_images[0][..., 0]
    for name, pixels in (("digit.png", digit), ("inverted.png", 1 - digit)):
        path = tmp_path / name
        Image.fromarray(np.round(pixels * 255).astype("uint8")).save(path)
        body, _ = _reconstruction(page, server, lambda: page.set_input_files("#upload", str(path)))
        sent = np.asarray(body["images"], dtype="float32")[0, ..., 0]
        assert np.abs(sent - digit).max() < 0.005, (name, np.abs(sent - digit).max())
    shot(page, tmp_path, "reconstruct_uploaded", full_page=True)
    page.click("#clear-drawing")
    assert page.is_hidden("#recon")


# -- latent perturbation ----------------------------------------------------------------------------------
def _latent_ready(not_code: str = "") -> str:
    return ("() => { const i = document.getElementById('latent-image'); return !i.hidden && i.complete && "
            f"i.naturalWidth > 0 && (i.dataset.code || '') !== '' && i.dataset.code !== {not_code!r} && "
            "document.getElementById('status').dataset.state === 'ready'; }")


def test_latent_sliders_move_one_code_and_show_the_servers_image(page, server, serving_exports, tmp_path):
    """The Latent panel: one slider per code dimension, starting from a seed's code (the server's
    :codes) or the drawing (encoded); moving one slider changes only that coordinate, and the picture
    is the server's :generate answer for exactly that code."""
    open_model(page, server, serving_exports.cond_kind)
    if serving_exports.cond_kind == "cgan":
        assert page.is_hidden("#latent-panel")  # no encoder, no latent panel
    open_model(page, server, "vae")
    assert page.is_visible("#latent-panel")
    assert page.locator("#latent-sliders input[type=range]").count() == 16
    page.wait_for_function(_latent_ready(), timeout=30_000)
    start = json.loads(page.get_attribute("#latent-image", "data-code"))
    status, _, body = request(server.url, "POST", "/v1/models/vae:codes", {"seeds": [7]})
    assert status == 200 and np.allclose(start, json.loads(body)["z"][0], atol=1e-6)
    assert np.array_equal(shown(page, "latent-image"), server_png(server, "vae", "generate", {"z": [start]}))
    before = shown(page, "latent-image")

    page.eval_on_selector("#latent-3", "(e) => { e.value = '2.5'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function(_latent_ready(json.dumps(start, separators=(",", ":"))), timeout=30_000)
    moved = json.loads(page.get_attribute("#latent-image", "data-code"))
    assert moved[3] == 2.5 and [v for i, v in enumerate(moved) if i != 3] == [v for i, v in enumerate(start) if i != 3]
    after = shown(page, "latent-image")
    assert not np.array_equal(after, before)
    assert np.array_equal(after, server_png(server, "vae", "generate", {"z": [moved]}))
    assert "moved z3 to 2.50" in page.text_content("#latent-caption")
    page.locator("#latent-panel").scroll_into_view_if_needed()
    shot(page, tmp_path, "latent_panel", full_page=True)

    # from the drawing: the code is the encoder's posterior mean of the image sent
    canvas = page.locator("#draw")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + .3 * box["width"], box["y"] + .2 * box["width"])
    page.mouse.down()
    page.mouse.move(box["x"] + .5 * box["width"], box["y"] + .8 * box["width"], steps=10)
    page.mouse.up()
    code_before = page.get_attribute("#latent-image", "data-code")
    with page.expect_request(lambda r: "/v1/models/vae:encode" in r.url) as sent:
        page.click("#latent-from-drawing")
    page.wait_for_function(_latent_ready(code_before), timeout=30_000)
    status, _, answer = request(server.url, "POST", "/v1/models/vae:encode", json.loads(sent.value.post_data))
    drawn = json.loads(page.get_attribute("#latent-image", "data-code"))
    assert status == 200 and np.allclose(drawn, json.loads(answer)["mean"][0], atol=1e-6)
    assert "the drawing, encoded" in page.text_content("#latent-caption")


# -- downloads -----------------------------------------------------------------------------------------
def test_download_buttons_give_the_servers_pngs(page, server, tmp_path):
    open_model(page, server, "vae")
    with page.expect_download() as grid:
        page.click("#download-grid")
    assert grid.value.suggested_filename == "vae-seed7-n16.png"
    grid.value.save_as(tmp_path / "grid.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png")),
                          server_png(server, "vae", "generate", {"n": 16, "seed": 7}))
    page.wait_for_function("() => !document.getElementById('download-strip').disabled", timeout=30_000)
    with page.expect_download() as strip:
        page.click("#download-strip")
    strip.value.save_as(tmp_path / "strip.png")
    png = np.asarray(Image.open(tmp_path / "strip.png"))
    assert png.shape == (32, 2 + 16 * 30)
    assert np.array_equal(png, server_png(server, "vae", "interpolate",
                                          {"seeds": [1, 2], "steps": 16, "method": "slerp"}))


# -- style-based models: truncation and style mixing -------------------------------------------------------
@pytest.fixture(scope="module")
def style_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("style_models")
    style_export(root / "style", tmp_path_factory)
    shutil.copytree(Path(__file__).parent / "fixtures" / "golden" / "exports" / "dcgan", root / "dcgan")
    proc = ServeProcess(["--models", str(root)], root.parent / "style_serve.log").start()
    yield proc
    proc.stop()


def _mix_ready(seeds: str, layer: int) -> str:
    return (f"() => {{ const i = document.getElementById('mix-grid'); return !i.hidden && i.complete && "
            f"i.naturalWidth > 0 && i.dataset.seeds === '{seeds}' && i.dataset.layer === '{layer}' && "
            f"document.getElementById('status').dataset.state === 'ready'; }}")


def test_truncation_slider_and_mixing_grid_show_the_servers_images(browser, style_server, tmp_path):
    watched = Watched(browser, style_server.url)
    watched.allowed.append("the server responded with a status of 400")
    page = watched.page
    open_model(page, style_server, "style")
    assert page.is_enabled("#truncation") and page.is_visible("#truncation-field") and page.is_visible("#mix-panel")
    plain = shown(page, "grid")
    assert np.array_equal(plain, server_png(style_server, "style", "generate", {"n": 16, "seed": 7, "truncation": 1}))
    # psi 0: every cell is the image of the average style
    page.eval_on_selector("#truncation", "(e) => { e.value = '0'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => document.getElementById('grid').dataset.truncation === '0' && "
                           "document.getElementById('status').dataset.state === 'ready'", timeout=30_000)
    average = shown(page, "grid")
    assert np.array_equal(average, server_png(style_server, "style", "generate",
                                              {"n": 16, "seed": 7, "truncation": 0}))
    assert page.text_content("#truncation-value") == "0.00" and "ψ 0.00" in page.text_content("#grid-caption")
    cells = [average[2 + r * 30:2 + r * 30 + 28, 2 + c * 30:2 + c * 30 + 28] for r in range(4) for c in range(4)]
    assert all(np.abs(cell.astype(int) - cells[0]).max() <= 1 for cell in cells)
    assert not np.array_equal(average, plain)

    # the mixing grid: default seeds 1-4, the layer in the middle of the 6 style layers
    page.wait_for_function(_mix_ready("1,2,3,4", 3), timeout=30_000)
    assert page.eval_on_selector_all("#mix-layer option", "os => os.map(o => o.value)") == ["1", "2", "3", "4", "5"]
    assert np.array_equal(shown(page, "mix-grid"),
                          server_png(style_server, "style", "mix", {"seeds": [1, 2, 3, 4], "layer": 3}))
    page.select_option("#mix-layer", "1")
    page.fill("#mix-seeds", "5, 6, 7")
    page.wait_for_function(_mix_ready("5,6,7", 1), timeout=30_000)
    mixed = shown(page, "mix-grid")
    assert mixed.shape == (92, 92)
    assert np.array_equal(mixed, server_png(style_server, "style", "mix", {"seeds": [5, 6, 7], "layer": 1}))
    shot(page, tmp_path, "style_mixing", full_page=True)
    # a bad seed list: the error sits under the seeds, the grid stays, marked stale
    page.fill("#mix-seeds", "5, x")
    page.wait_for_function("() => document.getElementById('mix-seeds-error').textContent !== ''", timeout=10_000)
    assert page.text_content("#mix-seeds-error") == "'x' is not a seed: give whole numbers ≥ 0"
    assert "stale" in page.get_attribute("#mix-figure", "class")
    assert page.get_attribute("#status", "data-state") == "error"
    page.fill("#mix-seeds", "5, 6, 7")
    page.wait_for_function(_mix_ready("5,6,7", 1), timeout=30_000)
    assert page.get_attribute("#mix-figure", "class") == "result"

    # a model without styles: no mixing panel, the slider disabled, no truncation sent
    open_model(page, style_server, "dcgan")
    assert page.is_hidden("#mix-panel") and page.is_hidden("#truncation-field")
    assert np.array_equal(shown(page, "grid"), server_png(style_server, "dcgan", "generate", {"n": 16, "seed": 7}))
    watched.close()


# -- image-to-image models: the Translate panel ------------------------------------------------------------
@pytest.fixture(scope="module")
def translate_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate_models")
    translator_exports(root, tmp_path_factory)
    shutil.copytree(Path(__file__).parent / "fixtures" / "golden" / "exports" / "dcgan", root / "dcgan")
    proc = ServeProcess(["--models", str(root)], root.parent / "translate_serve.log").start()
    yield proc
    proc.stop()


def _translation(page, server, model: str, action) -> tuple[bytes, str, np.ndarray]:
    """Do ``action``; → the PNG the page uploaded to :translate, its query string, and the
    picture it then shows (checked to be the server's answer to exactly that upload)."""
    before = page.get_attribute("#recon", "data-request") or ""
    with page.expect_request(lambda r: f"/v1/models/{model}:translate" in r.url) as sent:
        action()
    upload, query = sent.value.post_data_buffer, sent.value.url.split("?", 1)[1]
    assert sent.value.headers["content-type"] == "image/png"
    page.wait_for_function(f"() => {{ const i = document.getElementById('recon'); return !i.hidden && i.complete "
                           f"&& i.naturalWidth > 0 && (i.dataset.request || '') !== '{before}' && "
                           "document.getElementById('status').dataset.state === 'ready'; }", timeout=30_000)
    px = page.evaluate("""() => { const img = document.getElementById('recon');
      const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
      return {w: c.width, h: c.height, rgb: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)}; }""")
    picture = np.asarray(px["rgb"], dtype="uint8").reshape(px["h"], px["w"], 4)[..., :3]
    status, _, png = request(server.url, "POST", f"/v1/models/{model}:translate?{query}", upload,
                             {"Content-Type": "image/png"})
    assert status == 200, png
    want = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert np.array_equal(picture, want)
    return upload, query, picture


def test_translate_panel_sends_the_drawing_as_a_png_and_shows_the_translation(browser, translate_server, tmp_path):
    watched = Watched(browser, translate_server.url)
    page = watched.page
    page.goto(translate_server.url + "/")
    page.wait_for_function("() => document.getElementById('model').options.length === 3", timeout=60_000)
    page.select_option("#model", "upscaler")
    page.wait_for_function("() => document.body.dataset.mode === 'translate'", timeout=10_000)
    assert page.is_visible("#recon-panel") and page.is_hidden("#grid-figure") and page.is_hidden("#interp-panel")
    assert page.is_hidden("#seed") and page.is_hidden("#direction-field")
    assert page.inner_text("#recon-title").strip() == "Translate"
    assert page.text_content("#model-info") == "sr_l1 · translates 7×7×1 → 28×28×1"
    canvas = page.locator("#draw")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def draw_a_one():
        x, y, w = box["x"], box["y"], box["width"]
        page.mouse.move(x + .5 * w, y + .15 * w)
        page.mouse.down()
        page.mouse.move(x + .5 * w, y + .85 * w, steps=12)
        page.mouse.up()

    upload, query, picture = _translation(page, translate_server, "upscaler", draw_a_one)
    sent = np.asarray(Image.open(io.BytesIO(upload)))
    assert sent.shape[:2] == (7, 7) and query == "format=png"
    grey = sent[..., 0] if sent.ndim == 3 else sent
    assert grey.max() > 60 and grey[:, 0].max() == 0  # a vertical stroke in the middle, black edges
    assert picture.shape == (28, 28, 3)  # one 28x28 output, no grid border
    assert page.text_content("#recon-caption") == "upscaler · 7×7×1 → 28×28×1"
    shot(page, tmp_path, "translate_upscaler", full_page=True)

    # CycleGAN: a direction to pick; a colour upload is sent at 28x28 in colour, not inverted
    # (the drawing stays: choosing the model, then the direction, translates it again)
    _, query, _ = _translation(page, translate_server, "cycle", lambda: page.select_option("#model", "cycle"))
    assert query == "format=png&direction=a2b" and page.is_visible("#direction-field")
    assert page.eval_on_selector_all("#direction option", "os => os.map(o => o.value)") == ["a2b", "b2a"]
    _, query, _ = _translation(page, translate_server, "cycle", lambda: page.select_option("#direction", "b2a"))
    assert query == "format=png&direction=b2a"
    colour = np.zeros((56, 56, 3), np.uint8)
    colour[..., 0], colour[8:48, 24:32] = 200, (255, 255, 0)
    path = tmp_path / "colour.png"
    Image.fromarray(colour).save(path)
    upload, query, _ = _translation(page, translate_server, "cycle",
                                    lambda: page.set_input_files("#upload", str(path)))
    sent = np.asarray(Image.open(io.BytesIO(upload)).convert("RGB"))
    assert sent.shape == (28, 28, 3) and query == "format=png&direction=b2a"
    assert sent[0, 0, 0] > 150 and sent[14, 14, 1] > 150  # red background, yellow bar: not inverted
    assert page.text_content("#recon-caption").endswith("· b2a")
    shot(page, tmp_path, "translate_cycle", full_page=True)

    # back to a generator: its panels return, the drawing area hides (a GAN has no encoder)
    page.select_option("#model", "dcgan")
    page.wait_for_function(_grid_ready(7), timeout=60_000)
    assert page.is_hidden("#recon-panel") and page.is_visible("#interp-panel")
    watched.close()


# -- /docs -----------------------------------------------------------------------------------------------
def test_docs_render_offline_with_every_operation(page, server, tmp_path):
    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.textContent.trim())")
    for op in ("generate", "interpolate", "encode", "reconstruct", "predict"):
        assert f"/v1/models/{{name}}:{op}" in [p.replace("\u200b", "") for p in paths], paths
    assert page.query_selector(".errors-wrapper") is None  # Swagger UI found nothing wrong with the document
    page.click("#operations-operations-generate .opblock-summary")
    page.wait_for_selector("#operations-operations-generate .opblock-body", timeout=10_000)
    shot(page, tmp_path, "docs", full_page=False)
    status, _, raw = request(server.url, "GET", "/openapi.json")
    doc = json.loads(raw)
    for op in ("generate", "interpolate", "encode", "reconstruct", "predict"):
        ref = doc["paths"][f"/v1/models/{{name}}:{op}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert doc["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]["properties"], op
