"""The style space W in the latent tools, on a tiny untrained stylegan export (non-zero tracked
w_avg) and the golden DCGAN: interpolation in w ends at the styles of the two codes and passes
through their mean; GAN vector arithmetic adds exactly mean(w | A) - mean(w | B) to the styles of
class-C samples (checked against the export's own mapping and synthesis, with a labelling rule
given by the test), works in z for any generator, refuses w on a model without styles and a class
the labeller hardly saw; the CLI labels with the project's evaluator and prints its shares."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gen_keras import cli
from gen_keras.exported.reader import open_export
from gen_keras.latent import style_space, vector_arithmetic, w_interpolation_strips

from serving_fixtures import style_export

GOLDEN_DCGAN = Path(__file__).parent / "fixtures" / "golden" / "exports" / "dcgan"


@pytest.fixture(scope="module")
def style_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("wspace") / "style"
    style_export(target, tmp_path_factory)
    return target


def brightness_rule(images):
    """A labelling rule for the tests: an image's mean pixel against the terciles of ``images``'
    means (fixed once made), so that three classes of samples exist even for an untrained model."""
    cuts = np.quantile(np.asarray(images).mean(axis=(1, 2, 3)), [1 / 3, 2 / 3])
    return lambda batch: np.digitize(np.asarray(batch).mean(axis=(1, 2, 3)), cuts).astype(np.int64)


def test_w_interpolation_runs_between_the_two_styles(style_dir):
    reader = open_export(style_dir)
    space = style_space(reader)
    z = reader.sample_latent(2, seed=4)
    strip = w_interpolation_strips(reader, z[:1], z[1:], steps=5, method="linear")
    assert strip.shape == (5, 28, 28, 1)
    w = space.to_w(z)
    np.testing.assert_allclose(strip[0], space.synthesize(w[:1])[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], space.synthesize(w[1:])[0], atol=1e-5)
    np.testing.assert_allclose(strip[2], space.synthesize(w.mean(axis=0, keepdims=True))[0], atol=1e-5)
    # the export's generate is the synthesis of the mapped styles, one w for every layer
    ws = np.repeat(w[:, None], space.num_ws, axis=1)
    np.testing.assert_allclose(reader.run("synthesis", ws=ws)["image"], reader.generate(z), atol=1e-5)


def test_vector_arithmetic_adds_the_class_mean_difference(style_dir):
    reader = open_export(style_dir)
    space = style_space(reader)
    z = reader.sample_latent(300, seed=1)  # the draw vector_arithmetic makes with seed=1
    w = space.to_w(z)
    rule = brightness_rule(space.synthesize(w))
    labels = rule(space.synthesize(w))
    counts = np.bincount(labels, minlength=3)
    out = vector_arithmetic(reader, rule, 2, 0, 1, space="w", samples=300, count=4, scales=(0.0, 1.0), seed=1)
    want = w[labels == 2].mean(axis=0) - w[labels == 0].mean(axis=0)
    np.testing.assert_allclose(out.vector, want, atol=1e-5)
    assert out.counts == {k: int(v) for k, v in enumerate(counts)} and out.columns == 2
    rows = np.random.default_rng(1).choice(np.flatnonzero(labels == 1), size=4, replace=False)
    grid = out.grid.reshape(4, 2, 28, 28, 1)
    # column 0: a class-1 sample itself; column 1: its style plus the vector
    np.testing.assert_allclose(grid[:, 0], space.synthesize(w[rows]), atol=1e-5)
    np.testing.assert_allclose(grid[:, 1], space.synthesize(w[rows] + want), atol=1e-4)
    assert [s["scale"] for s in out.shares] == [0.0, 1.0] and out.shares[0]["share_onto"] == 1.0


def test_vector_arithmetic_in_z_and_its_errors():
    dcgan = open_export(GOLDEN_DCGAN)
    z = dcgan.sample_latent(300, seed=0)
    rule = brightness_rule(dcgan.generate(z))
    labels = rule(dcgan.generate(z))
    out = vector_arithmetic(dcgan, rule, 2, 0, 1, space="z", samples=300, count=2, scales=(0.0, 1.0))
    assert out.grid.shape == (4, 28, 28, 1)
    np.testing.assert_allclose(out.vector, z[labels == 2].mean(axis=0) - z[labels == 0].mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="has no style space .* use --space z"):
        vector_arithmetic(dcgan, rule, 2, 0, 1, space="w", samples=50)
    with pytest.raises(ValueError, match=r"--plus 7: the evaluator read 0 of the 50 samples as class 7"):
        vector_arithmetic(dcgan, rule, 7, 0, 1, space="z", samples=50)


def test_cli_gan_arithmetic_labels_with_the_evaluator(style_dir, tmp_path, capsys, data_cache):
    from gen_keras.config import DataConfig, RunConfig
    from gen_keras.config_loader import model_config_from_dict
    from gen_keras.eval.evaluator import get_evaluator

    reader = open_export(style_dir)
    evaluator = get_evaluator(RunConfig(model=model_config_from_dict(reader.model_config), data=DataConfig()))
    space = style_space(reader)
    read = evaluator.predict(space.synthesize(space.to_w(reader.sample_latent(400, 0))), reader.value_range)
    seen = [int(c) for c in np.argsort(-np.bincount(read, minlength=10))[:3]]  # the three most read classes
    assert np.bincount(read, minlength=10)[seen].min() >= 5
    out = tmp_path / "vec.png"
    code = cli.main(["latent", "gan-arithmetic", "--export", str(style_dir), "--plus", str(seen[0]),
                     "--minus", str(seen[1]), "--onto", str(seen[2]), "--samples", "400", "--count", "3",
                     "--out", str(out)])
    assert code == 0 and out.stat().st_size > 200
    line = json.loads([s for s in capsys.readouterr().out.splitlines() if s.startswith("{")][0])
    assert line["space"] == "w" and len(line["shares"]) == 5 and line["shares"][0]["share_onto"] == 1.0
    assert cli.main(["latent", "interpolate", "--export", str(style_dir), "--space", "w", "--pairs", "2",
                     "--steps", "4", "--method", "linear", "--out", str(tmp_path / "w.png")]) == 0
    assert cli.main(["latent", "gan-arithmetic", "--export", str(GOLDEN_DCGAN), "--plus", "1", "--minus", "2",
                     "--onto", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "has no style space" in capsys.readouterr().err
