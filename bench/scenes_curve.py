"""Time to quality at 64x64 colour, trained FROM A FOLDER (#29 item 4): the style-based GAN and the
DCGAN baseline on a folder of the renderer's 64x64 scenes written as PNG files (one sub-folder
per shape), read through ``folder:`` like a team's photos.

    python bench/scenes_curve.py --step evaluators                 # folder, evaluators, floor
    python bench/scenes_curve.py --step curve --recipe stylegan_scenes64 --pause-after 20
    python bench/scenes_curve.py --step curve --recipe stylegan_scenes64     # resumes: 20 -> 40
    python bench/scenes_curve.py --step curve --recipe dcgan_scenes64 --pause-after 20
    python bench/scenes_curve.py --step curve --recipe dcgan_scenes64

Each step fits one ~20-25 minute slot of a shared machine. A curve trains with no epoch limit;
at each mark of TRAINING minutes (5, 10, 20, 40) the samples are scored with the project's
evaluator for this folder (``gen_keras.eval.evaluator``: the classifier trained on the folder's
train split, classes = the shape sub-folders) — FID, KID, precision/recall, shapes covered and
class KL, N = 2,000 — and with three more classifiers of the same recipe trained on the hue of
the floor, the wall and the object (10 hues each, read from the file names: the coverage check
"all shapes and colours"). With ``--pause-after M`` the run stops at the first epoch end after M
training minutes (as Ctrl-C would: the epoch's checkpoint is written) and the next invocation
resumes it; the minutes already trained are carried over (the clock's state beside the outputs),
so a curve is the same curve in one or two slots. One JSON line per point and per finished curve
on stdout; the sample grid of each mark in ``--outputs``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
HUES = ("floor_hue", "wall_hue", "object_hue")
HUE_TRAIN_IMAGES = 8000  # a hue is easy to read: 8,000 scenes train each hue classifier


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--step", choices=("evaluators", "curve", "serve"), required=True)
    p.add_argument("--recipe", default="stylegan_scenes64", help="a config in pipelines/configs")
    p.add_argument("--folder", default="/work/h4data/scenes64", help="the scene folder (written "
                   "with --count scenes when missing)")
    p.add_argument("--count", type=int, default=30_000)
    p.add_argument("--marks", default="5,10,20,40", help="training minutes of the points")
    p.add_argument("--pause-after", type=float, default=0.0,
                   help="stop at the first epoch end after this many training minutes (resume later)")
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outputs", default=str(ROOT / "bench_outputs" / "scenes"))
    p.add_argument("--export", default="", help="serve: the export (default: the curve's)")
    p.add_argument("--screenshot", default=str(ROOT / "docs" / "images" / "scenes64_page.png"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def config(args, recipe: str):
    from gen_keras.config_loader import load_config

    return load_config(CONFIGS / f"{recipe}.yaml", [
        f"data.dataset=folder:{args.folder}", f"tracking.outputs_dir={args.outputs}",
        "tracking.experiment=gen-keras-bench", f"tracking.run_name=scenes-{recipe}",
        "train.progress=false", "train.evaluate_at_end=false", "train.export_at_end=true",
        f"train.seed={args.seed}", "train.epochs=100000"] + list(args.overrides))


def ensure_folder(args) -> None:
    from gen_keras.data.scene_folder import write_scene_folder

    if not Path(args.folder).is_dir():
        started = time.time()
        write_scene_folder(args.folder, args.count, args.seed)
        print(json.dumps({"step": "folder", "folder": args.folder, "scenes": args.count,
                          "seconds": round(time.time() - started, 1)}), flush=True)


def split_with_hues(cfg, split: str, limit: int = 0):
    """``(images in [0, 1] [N, 64, 64, 3], shape labels, {hue: labels})`` of one split of the
    folder, the hues read from the file names (the prepared examples carry their paths)."""
    from gen_keras.data.folder_prepare import Settings, ensure_prepared
    from gen_keras.data.paths import default_data_dir
    from gen_keras.data.scene_folder import factors_of_name

    folder = cfg.data.dataset.partition(":")[2]
    prepared = ensure_prepared(folder, Settings(tuple(cfg.model.image_shape), cfg.data.resize),
                               default_data_dir(cfg.data.data_dir), progress=False)
    ds = prepared.elements(split, test_fraction=cfg.data.test_fraction, with_path=True)
    if limit:
        ds = ds.take(limit)
    images, labels, paths = [], [], []
    for batch in ds.batch(1000):
        images.append(batch["image"].numpy())
        labels.append(batch["label"].numpy())
        paths += [p.decode() for p in batch["path"].numpy()]
    hues = {h: np.array([factors_of_name(p)[h] for p in paths], np.int64) for h in HUES}
    return np.concatenate(images).astype(np.float32) / 255.0, np.concatenate(labels), hues


def hue_evaluators(cfg) -> dict:
    """One classifier per hue factor (the evaluator's recipe), cached like the evaluator."""
    from gen_keras.eval.evaluator import evaluator_for_arrays

    x, _, hues = split_with_hues(cfg, "train", HUE_TRAIN_IMAGES)
    test = {}

    def test_split(h):
        if not test:
            tx, _, th = split_with_hues(cfg, "test", 2000)
            test.update(x=tx, **th)
        return test["x"], test[h]

    shape = tuple(cfg.model.image_shape)
    return {h: evaluator_for_arrays(f"{cfg.data.dataset}-{h}", shape, x, hues[h],
                                    lambda h=h: test_split(h)) for h in HUES}


class Reference:
    """The first N test images: features and classes under every evaluator, computed once."""

    def __init__(self, cfg, evaluator, hue_nets, n: int):
        x, _, hues = split_with_hues(cfg, "test", n)
        self.n, self.images = len(x), x
        self.feats, self.classes = evaluator.features_and_classes(x, (0.0, 1.0))
        self.hue_classes = {h: net.predict(x, (0.0, 1.0)) for h, net in hue_nets.items()}
        self.hue_truth = hues


def score(images, value_range, ref: Reference, evaluator, hue_nets, seed: int) -> dict:
    from gen_keras.eval.coverage import mode_coverage
    from gen_keras.eval.samples import compare_features

    feats, classes = evaluator.features_and_classes(images, value_range)
    out = compare_features(ref.feats, ref.classes, feats, classes, evaluator.num_classes, seed=seed)
    n = ref.n
    keep = {f"fid_{n}", f"kid_{n}", f"precision_{n}", f"recall_{n}", f"density_{n}", f"coverage_{n}",
            f"class_kl_{n}", "classes_covered", "classes_total"}
    out = {k: round(float(v), 6) for k, v in out.items() if k in keep}
    for h, net in hue_nets.items():
        m = mode_coverage(net.predict(images, value_range), ref.hue_classes[h], net.num_classes)
        out[f"{h}_covered"] = int(m["classes_covered"])
        out[f"{h}_total"] = int(m["classes_total"])
        out[f"{h}_kl"] = round(m["class_kl"], 4)
    return out


def step_evaluators(args) -> int:
    """The folder, its preparation, the evaluator, the hue classifiers and the real-data floor."""
    from gen_keras.data import make_datasets
    from gen_keras.eval.evaluator import get_evaluator, split_in_unit_range

    ensure_folder(args)
    cfg = config(args, "stylegan_scenes64")
    started = time.time()
    data = make_datasets(cfg)  # prepares the folder once (progress bar, summary on stderr)
    prepared_s = time.time() - started
    evaluator = get_evaluator(cfg)
    hue_nets = hue_evaluators(cfg)
    ref = Reference(cfg, evaluator, hue_nets, args.num_samples)
    train_x, _ = split_in_unit_range(cfg, "train")
    draw = train_x[np.random.default_rng(args.seed).choice(len(train_x), ref.n, replace=False)]
    floor = score(draw, (0.0, 1.0), ref, evaluator, hue_nets, args.seed)
    hue_acc = {h: round(net.test_accuracy, 4) for h, net in hue_nets.items()}
    print(json.dumps({"step": "evaluators", "folder": args.folder, "num_train": data.info.num_train,
                      "num_test": data.info.num_test, "classes": data.info.num_classes,
                      "prepare_seconds": round(prepared_s, 1),
                      "evaluator_test_accuracy": evaluator.test_accuracy, "hue_test_accuracy": hue_acc,
                      "minutes": round((time.time() - started) / 60, 2),
                      "what": f"{ref.n} real TRAIN images (seed {args.seed}) vs the first {ref.n} test images",
                      "floor": floor}), flush=True)
    Path(args.outputs).mkdir(parents=True, exist_ok=True)
    (Path(args.outputs) / "floor.json").write_text(json.dumps(floor))
    return 0


def step_curve(args) -> int:
    import keras

    from gen_keras.eval.evaluator import get_evaluator
    from gen_keras.eval.samples import generate_samples
    from gen_keras.images import grid_png
    from gen_keras.precision import float32_twin
    from gen_keras.training import train

    cfg = config(args, args.recipe)
    out = Path(args.outputs)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / f"clock_{args.recipe}.json"
    evaluator = get_evaluator(cfg)
    hue_nets = hue_evaluators(cfg)
    ref = Reference(cfg, evaluator, hue_nets, args.num_samples)
    floor = json.loads((out / "floor.json").read_text()) if (out / "floor.json").exists() else {}
    marks = [float(m) for m in args.marks.split(",")]

    def measure(model):
        twin = float32_twin(model)
        images = generate_samples(twin, ref.n, args.seed)
        value_range = type(twin.config).value_range
        grid = grid_png(images[:64], value_range, columns=8)
        (out / f"{args.recipe}_{len(clock.points) + 1}.png").write_bytes(grid)
        return score(images, value_range, ref, evaluator, hue_nets, args.seed)

    # what every line starts with: the curve, its config and the --set settings it ran with
    head = {"curve": args.recipe, "config": f"{args.recipe}.yaml",
            **({"settings": args.overrides} if args.overrides else {})}

    def report(point):
        print(json.dumps({**head, **point}), flush=True)

    clock = ResumableClock(marks, measure, report, state_path, args.pause_after)
    started = time.time()
    try:
        result = train(cfg, callbacks=[clock], tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    except Paused as paused:
        print(json.dumps({"curve": args.recipe, "paused": str(paused),
                          "wall_minutes": round((time.time() - started) / 60, 2),
                          "load_average": round(os.getloadavg()[0], 1)}), flush=True)
        return 0
    del keras
    saved = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**saved, "export_dir": str(result.export_dir), "run_id": result.run_id}))
    print(json.dumps({**head, "run_id": result.run_id,
                      "export_dir": str(result.export_dir), "wall_minutes_last_slot":
                      round((time.time() - started) / 60, 2), "load_average": round(os.getloadavg()[0], 1),
                      "floor_fid": floor.get(f"fid_{ref.n}"), "points": clock.points}), flush=True)
    return 0


class Paused(KeyboardInterrupt):
    """Raised at an epoch end to free the machine; the trainer keeps the run resumable (as for
    Ctrl-C: its state says KILLED, and the same run name resumes it)."""


class ResumableClock:
    """:class:`gen_keras.eval.curve.QualityClock` whose minutes survive a pause: the training
    minutes at every epoch end and the points so far are kept in ``state_path``; a resumed run
    starts its clock at the minutes of the epoch its checkpoint holds."""

    def __new__(cls, marks, measure, report, state_path: Path, pause_after: float):
        from gen_keras.eval.curve import QualityClock

        class _Clock(QualityClock):
            def __init__(self):
                super().__init__(marks, measure, report)
                self.state_path, self.pause_after = Path(state_path), pause_after
                saved = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
                self.epoch_minutes = {int(k): v for k, v in saved.get("epoch_minutes", {}).items()}
                self.points = saved.get("points", [])
                self.offset, self._first = 0.0, True

            def training_minutes(self):
                return super().training_minutes() + self.offset

            def on_epoch_begin(self, epoch, logs=None):
                if self._first:  # the epoch the run (re)starts at: its minutes so far
                    self._first = False
                    self.offset = self.epoch_minutes.get(epoch, 0.0)
                    self.points = [p for p in self.points if p["epoch"] <= epoch]
                super().on_epoch_begin(epoch, logs)

            def on_epoch_end(self, epoch, logs=None):
                self.epoch_minutes[epoch + 1] = self.training_minutes()
                self._save()
                if (self.pause_after and self.training_minutes() >= self.pause_after
                        and len(self.points) < len(self.marks)):
                    raise Paused(f"paused after epoch {epoch + 1} at {self.training_minutes():.2f} "
                                 f"training minutes; run the same command again to resume")

            def _record(self, mark, **extra):
                super()._record(mark, **extra)
                self._save()

            def _save(self):
                from gen_keras.files import atomic_write_text

                atomic_write_text(self.state_path, json.dumps(
                    {"epoch_minutes": self.epoch_minutes, "points": self.points}))

        return _Clock()


PAGE_PIXELS = """() => {
  const img = document.getElementById('grid');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  return {w: c.width, h: c.height, rgba: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)};
}"""
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage"]


def step_serve(args) -> int:
    """``gen-keras serve`` on the curve's export, its page in a real headless Chromium: the grid's
    pixels read back from the page (colour, 64x64 tiles) and a screenshot into --screenshot."""
    import shutil
    import signal
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    state = json.loads((Path(args.outputs) / f"clock_{args.recipe}.json").read_text())
    export = Path(args.export or state.get("export_dir", ""))
    if not (export / "manifest.json").is_file():
        raise SystemExit(f"no export at {export!r}: finish the curve first or pass --export")
    models = Path(args.outputs) / "served"
    shutil.rmtree(models, ignore_errors=True)
    models.mkdir(parents=True)
    (models / args.recipe.replace("_", "-")).symlink_to(export.resolve())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(Path(args.outputs) / "serve.log", "wb")
    server = subprocess.Popen([str(Path(sys.executable).with_name("gen-keras")), "serve", "--models",
                               str(models), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"gen-keras serve did not start; see {log.name}") from None
                time.sleep(1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=BROWSER_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url + "/")
            page.wait_for_function("() => { const i = document.getElementById('grid'); return i && !i.hidden"
                                   " && i.complete && i.naturalWidth > 0 && document.getElementById('status')"
                                   ".dataset.state === 'ready'; }", timeout=120_000)
            px = page.evaluate(PAGE_PIXELS)
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.screenshot, full_page=True)
            caption = page.text_content("#grid-caption")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    rgba = np.asarray(px["rgba"], np.float64).reshape(px["h"], px["w"], 4)
    chroma = float(np.mean(np.abs(rgba[..., 0] - rgba[..., 1]) + np.abs(rgba[..., 1] - rgba[..., 2])))
    manifest = json.loads((export / "manifest.json").read_text())
    shape = next(o["shape"] for o in manifest["endpoints"]["generate"]["output_specs"] if o["role"] == "image")
    print(json.dumps({"step": "serve", "export": str(export), "grid_png": [px["w"], px["h"]],
                      "image_shape": shape[1:], "mean_chroma": round(chroma, 1), "colour": chroma > 10,
                      "caption": caption, "screenshot": args.screenshot}), flush=True)
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    steps = {"evaluators": step_evaluators, "curve": step_curve, "serve": step_serve}
    return steps[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
