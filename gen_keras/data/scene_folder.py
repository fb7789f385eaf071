"""A folder of colour scene photos for the ``folder:`` recipe: 64x64 scenes drawn by the
project's renderer (:mod:`gen_keras.data.render_shapes3d`: a floor, a wall, sky and one shaded
object) written as PNG files, one sub-folder per shape — the stand-in for a team's own photos,
read through ``folder:`` like any photo folder (not through the factor-set loader).

    python -m gen_keras.data.scene_folder data/scenes64 --count 30000

Layout: ``<root>/<shape>/<flat index>_f<floor>_w<wall>_o<object>_s<scale>_r<orientation>.png``
(``cube``, ``cylinder``, ``sphere``, ``capsule``; the digits are the factor indices, so a bench
can read each file's hues back from its name: :func:`factors_of_name`). The scenes are a seeded
draw without replacement from the 480,000 combinations. The folder appears whole: it is written
under a temporary name and renamed.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import uuid
from pathlib import Path

NAME = re.compile(r"^(\d+)_f(\d)_w(\d)_o(\d)_s(\d)_r(\d+)\.png$")
FACTORS = ("floor_hue", "wall_hue", "object_hue", "scale", "orientation")


def scene_file(flat: int, idx) -> str:
    from gen_keras.data.render_shapes3d import SHAPES

    f, w, o, s, shape, r = (int(v) for v in idx)
    return f"{SHAPES[shape]}/{flat:06d}_f{f}_w{w}_o{o}_s{s}_r{r:02d}.png"


def factors_of_name(name: str) -> dict[str, int]:
    """The factor indices of a file written here, from its name (``KeyError``-free: a name that
    is not one of ours is a ValueError)."""
    m = NAME.match(Path(name).name)
    if not m:
        raise ValueError(f"{name!r} is not a scene file name (<index>_f<d>_w<d>_o<d>_s<d>_r<dd>.png)")
    return dict(zip(FACTORS, (int(g) for g in m.groups()[1:])))


def write_scene_folder(root, count: int, seed: int = 0, chunk: int = 1000) -> Path:
    """Write ``count`` scenes into ``root`` (which must not exist); returns it."""
    from PIL import Image

    from gen_keras.data.factor_sets import flat_index, subset_flat_indices, unflatten_index
    from gen_keras.data.render_shapes3d import SHAPES, SHAPES3D, render

    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} exists; choose a new folder")
    sizes = SHAPES3D.factor_sizes
    flat = subset_flat_indices(SHAPES3D.num_combinations, count, seed)
    tmp = root.parent / f".{root.name}.incomplete-{uuid.uuid4().hex[:8]}"
    try:
        for shape in SHAPES:
            (tmp / shape).mkdir(parents=True)
        for start in range(0, len(flat), chunk):
            idx = unflatten_index(flat[start:start + chunk], sizes)
            images = render(idx)["image"]
            for k in range(len(idx)):
                buf = io.BytesIO()
                Image.fromarray(images[k]).save(buf, format="PNG", compress_level=6)
                (tmp / scene_file(int(flat_index(idx[k:k + 1], sizes)[0]), idx[k])).write_bytes(buf.getvalue())
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="the folder to create")
    p.add_argument("--count", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_scene_folder(args.root, args.count, args.seed)
    print(f"wrote {args.count:,} scenes into {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
