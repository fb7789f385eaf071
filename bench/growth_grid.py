"""One picture of a progressive GAN growing: the top rows of the per-epoch sample grids a run
wrote (``<outputs>/samples/<run>/samples/epoch_NNN.png``, the same latent codes every epoch),
stacked for the chosen epochs, each labelled with its epoch and growth level.

    python bench/growth_grid.py --samples outputs/samples/RUN/samples --epochs 1,5,8,12,16,20,35 \\
        --config pipelines/configs/dcgan_progressive_mnist10k.yaml --out docs/images/progressive_growth.png

The level printed is the one the epoch's last training step used (``--images-per-epoch`` real
images an epoch, the config's schedule and batch size).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", required=True, help="folder of epoch_NNN.png sample grids")
    p.add_argument("--epochs", required=True, help="comma-separated epochs to show, in order")
    p.add_argument("--config", required=True, help="the run's config (for the growth schedule)")
    p.add_argument("--images-per-epoch", type=int, default=8000)
    p.add_argument("--rows", type=int, default=1, help="rows of each grid to keep")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def epoch_level(cfg, epoch: int, images_per_epoch: int) -> float:
    from gen_keras.models.progressive import growth_level

    m, batch = cfg.model, cfg.train.batch_size
    start, levels = m.growth_schedule()
    steps = -(-images_per_epoch // batch) * epoch  # the epoch's last step starts after steps - 1
    return float(growth_level((steps - 1) * batch, start, levels, m.progressive_fade_images,
                              m.progressive_stable_images))


def main(argv=None) -> int:
    from gen_keras.config_loader import load_config
    from gen_keras.models.dcgan import _base_and_upsamplings
    from gen_keras.models.progressive import resolution_at

    args = parse_args(argv)
    cfg = load_config(args.config)
    base = _base_and_upsamplings(cfg.model.image_shape)[0]
    bands, labels = [], []
    for epoch in (int(e) for e in args.epochs.split(",")):
        bands.append(top_rows(Path(args.samples) / f"epoch_{epoch:03d}.png", args.rows))
        level = epoch_level(cfg, epoch, args.images_per_epoch)
        labels.append(f"epoch {epoch}: level {level:.2f} ({resolution_at(level, base)}x{resolution_at(level, base)})")
    print(stack_bands(bands, labels, Path(args.out)))
    return 0


def top_rows(path: Path, rows: int) -> np.ndarray:
    """The first ``rows`` rows of cells of a square sample grid PNG, as a grey array."""
    from PIL import Image

    if not path.is_file():
        raise SystemExit(f"no {path}")
    grid = np.asarray(Image.open(path).convert("L"))
    cell = grid.shape[1] / round(float(np.sqrt(_cells(grid))))
    return grid[: round(cell * rows) + 2]


def stack_bands(bands, labels, out: Path, label_width: int = 210) -> Path:
    """The bands one under the other on a white canvas, each with its label on the left."""
    from PIL import Image, ImageDraw

    width = label_width + max(b.shape[1] for b in bands)
    canvas = Image.new("L", (width, sum(b.shape[0] for b in bands)), 255)
    draw, y = ImageDraw.Draw(canvas), 0
    for band, label in zip(bands, labels):
        canvas.paste(Image.fromarray(band), (label_width, y))
        draw.text((6, y + band.shape[0] // 2 - 6 * (label.count("\n") + 1)), label, fill=0)
        y += band.shape[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _cells(grid: np.ndarray) -> int:
    """How many cells a square sample grid has: columns counted from the white separator columns."""
    white = np.all(grid == 255, axis=0)
    starts = np.flatnonzero(~white[1:] & white[:-1])
    return len(starts) ** 2


if __name__ == "__main__":
    raise SystemExit(main())
