"""The samples behind a time-to-quality curve: for each recipe, the first rows of the fixed-noise
grid its curve run wrote at its last epoch (``<outputs>/samples/bench-<recipe>-*/samples/``),
stacked one recipe under the other and labelled with the recipe, the epoch and, when the curve's
JSON lines are given, its FID at the last mark.

    python bench/curve_grids.py --outputs OUT --recipes dcgan,stylegan --jsonl curve.jsonl \\
        --out docs/images/curve_samples.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from growth_grid import stack_bands, top_rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--outputs", required=True, help="the --outputs folder of `bench/quality.py --curve`")
    p.add_argument("--recipes", required=True, help="comma-separated recipes, in the order to show")
    p.add_argument("--jsonl", default=None, help="the curve's JSON lines (for the FID at the last mark)")
    p.add_argument("--rows", type=int, default=3, help="rows of each grid to keep")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def last_grid(outputs: Path, recipe: str) -> Path:
    """The last epoch's sample grid of the most recent curve run of ``recipe``."""
    runs = sorted((outputs / "samples").glob(f"bench-{recipe}-*"), key=lambda d: d.stat().st_mtime)
    grids = sorted((runs[-1] / "samples").glob("epoch_*.png"), key=lambda g: int(g.stem.split("_")[1])) if runs else []
    if not grids:
        raise SystemExit(f"curve_grids: no sample grids of {recipe!r} under {outputs}/samples/bench-{recipe}-*")
    return grids[-1]


def last_points(jsonl: Path | None) -> dict:
    """recipe -> its last measured point (the curve's summary line)."""
    points = {}
    for line in (jsonl.read_text().splitlines() if jsonl else []):
        row = json.loads(line)
        if row.get("points"):
            points[row["curve"]] = row["points"][-1]
    return points


def main(argv=None) -> int:
    args = parse_args(argv)
    points = last_points(Path(args.jsonl) if args.jsonl else None)
    bands, labels = [], []
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        grid = last_grid(Path(args.outputs), recipe)
        bands.append(top_rows(grid, args.rows))
        label = f"{recipe}\nepoch {int(grid.stem.split('_')[1])}"
        point = points.get(recipe)
        if point:
            fid = next((v for k, v in point.items() if k.startswith("fid_")), None)
            label += f", {point['mark_minutes']:g} min" + (f"\nFID {fid:.1f}" if fid is not None else "")
        labels.append(label)
    print(stack_bands(bands, labels, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
