"""Latent-space tools: interpolation (lerp/slerp and their edge cases), arithmetic, traversal,
manifold, scatter — on hand values, on a real conditional VAE's export (onnxruntime), from an
MLflow run id through the CLI, and on a generator-only (GAN-like) export."""
import json
import shutil
from statistics import NormalDist

import numpy as np
import pytest
from PIL import Image

from gen_keras import cli, latent
from gen_keras.artifacts import load_model, sha256_file
from gen_keras.config_loader import load_config
from gen_keras.errors import ArtifactIntegrityError, ModelSourceError
from gen_keras.exported.manifest import verify_export
from gen_keras.exported.sources import download_run_export
from gen_keras.models import build_model
from gen_keras.precision import float32_twin
from gen_keras.training import train

from conftest import ROOT

CVAE = ROOT / "pipelines" / "configs" / "cvae_mnist10k.yaml"
LATENT = 3


# ------------------------------------------------------------------------------------------
# Pure functions on hand values
# ------------------------------------------------------------------------------------------
def test_lerp_and_slerp_hand_values():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(latent.lerp(a, b, 3), [[1, 0], [0.5, 0.5], [0, 1]])
    s = latent.slerp(a, b, 3)
    np.testing.assert_allclose(s, [[1, 0], [np.sqrt(0.5), np.sqrt(0.5)], [0, 1]], atol=1e-7)
    # Equal norms stay on the sphere along the whole path; a straight line dips inside it.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(16), rng.standard_normal(16)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    path = latent.slerp(a, b, 9)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    np.testing.assert_allclose(path[[0, -1]], [a, b], rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(latent.lerp(a, b, 9)[4]) < 0.9 * np.linalg.norm(a)


def test_slerp_of_identical_and_parallel_vectors():
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(latent.slerp(a, a, 5), np.repeat(a[None], 5, 0), rtol=1e-6)
    # Same direction, other length: the limit of slerp is the straight line (no NaN).
    np.testing.assert_allclose(latent.slerp(a, 2 * a, 3), latent.lerp(a, 2 * a, 3), rtol=1e-6)
    np.testing.assert_allclose(latent.slerp(np.zeros(3), a, 3), latent.lerp(np.zeros(3), a, 3))


def test_slerp_of_opposite_vectors():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([-2.0, 0.0, 0.0])
    path = latent.slerp(a, b, 5)
    assert np.isfinite(path).all()
    np.testing.assert_allclose(path[[0, -1]], [a, b], atol=1e-6)
    mid = path[2]  # half-way: turned 90 degrees, norm half-way from 1 to 2
    assert abs(np.dot(mid, a)) < 1e-6 and np.linalg.norm(mid) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="1-D latent"):
        latent.slerp([1.0], [-1.0], 4)
    np.testing.assert_allclose(latent.slerp([1.0], [3.0], 3).ravel(), [1, 2, 3])


def test_too_few_steps_and_bad_arguments_are_clear_errors():
    for call in (lambda: latent.slerp([1, 0], [0, 1], 1), lambda: latent.lerp([1], [2], 0),
                 lambda: latent.traversal_values(1)):
        with pytest.raises(ValueError, match="at least 2 steps"):
            call()
    with pytest.raises(ValueError, match="at least 2 points"):
        latent.manifold_codes(1, 2)
    with pytest.raises(ValueError, match="method='cubic'"):
        latent.interpolate([1, 0], [0, 1], 3, method="cubic")
    with pytest.raises(ValueError, match="sizes 2 and 3"):
        latent.lerp([1, 0], [0, 1, 2], 3)


def test_traversal_codes_and_dims():
    values = latent.traversal_values(5, span=2.0)
    np.testing.assert_allclose(values, [-2, -1, 0, 1, 2])
    codes = latent.traversal_codes([0.5, -1.0, 0.0], [2, 0], values)
    assert codes.shape == (10, 3)
    np.testing.assert_allclose(codes[:5, 2], values)
    np.testing.assert_allclose(codes[:5, :2], [[0.5, -1]] * 5)
    np.testing.assert_allclose(codes[5:, 0], 0.5 + values)
    # A 1-D latent: one row, the code itself moves.
    np.testing.assert_allclose(latent.traversal_codes([0.5], None, values).ravel(), 0.5 + values)
    with pytest.raises(ValueError, match=r"\[3\] out of range.*0\.\.2"):
        latent.traversal_codes(np.zeros(3), [0, 3], values)


def test_traversal_grid_of_a_1d_latent_model():
    model = build_model(load_config(None, ["model.kind=vae", "model.latent_dim=1",
                                           "model.filters=8", "model.hidden=16"]).model)
    images, ncols = latent.traversal_grid(model, steps=7)
    assert images.shape == (7, 28, 28, 1) and ncols == 7
    assert images.min() >= 0 and images.max() <= 1
    assert not np.allclose(images[0], images[-1])  # the one dimension changes the image
    with pytest.raises(ValueError, match="at least 2"):
        latent.manifold_grid(model, n=4)
    with pytest.raises(ValueError, match="latent size is 1"):
        latent.interpolation_strips(model, np.zeros((1, 2)), np.ones((1, 2)), 3)


def test_manifold_codes_are_gaussian_quantiles():
    q = NormalDist().inv_cdf(0.95)
    codes = latent.manifold_codes(3, 4, dims=(1, 3))
    assert codes.shape == (9, 4)
    np.testing.assert_allclose(codes[0], [0, -q, 0, q], atol=1e-6)  # top-left: low x, high y
    np.testing.assert_allclose(codes[4], 0, atol=1e-6)  # centre: the prior mean
    np.testing.assert_allclose(codes[8], [0, q, 0, -q], atol=1e-6)
    with pytest.raises(ValueError, match="two different"):
        latent.manifold_codes(3, 4, dims=(1, 1))


def test_project_2d_pca():
    rng = np.random.default_rng(0)
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    codes = rng.standard_normal((500, 1)) * 5 * axis + rng.standard_normal((500, 3)) * 0.1 + 7
    points, names = latent.project_2d(codes)
    assert points.shape == (500, 2) and names[0] == "PC1 (100% of variance)"
    # PC1 is the long axis (up to sign): it carries the projection of the centred codes.
    np.testing.assert_allclose(np.abs(points[:, 0]), np.abs((codes - codes.mean(0)) @ axis), atol=0.3)
    two, names2 = latent.project_2d(codes[:, :2])
    np.testing.assert_array_equal(two, codes[:, :2])
    assert names2 == ["z[0]", "z[1]"]
    assert latent.project_2d(codes[:, :1])[0].shape == (500, 2)


def test_class_means_and_attribute_vector():
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 4.0], [1.0, 6.0]])
    means = latent.class_means(codes, [1, 1, 7, 7])
    np.testing.assert_allclose(means[1], [1, 0])
    np.testing.assert_allclose(means[7], [1, 5])
    np.testing.assert_allclose(latent.attribute_vector(means, 1, 7), [0, 5])
    with pytest.raises(ValueError, match=r"unknown class 4.*\[1, 7\]"):
        latent.attribute_vector(means, 1, 4)


def test_scatter_image_draws_each_class_colour():
    from gen_keras.latent.manifold import PALETTE

    rng = np.random.default_rng(0)
    img = latent.scatter_image(rng.standard_normal((300, 2)), np.arange(300) % 3, ("a", "b"), "t")
    assert img.shape == (640, 730, 3) and img.dtype == np.uint8
    for colour in PALETTE[:3]:
        assert (img == colour).all(-1).sum() > 50
    assert not (img == PALETTE[3]).all(-1).any()


# ------------------------------------------------------------------------------------------
# A real conditional VAE: trained, saved, exported, logged to a real MLflow server
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cvae_run(mlflow_server, data_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("cvae")
    cfg = load_config(CVAE, [f"tracking.outputs_dir={out / 'outputs'}", "train.progress=false",
                             "data.limit_train=1024", "data.limit_test=256", "train.batch_size=64",
                             "train.epochs=1", f"model.latent_dim={LATENT}",
                             # no test here reads the end-of-training metrics (test_eval_cli.py does)
                             "train.evaluate_at_end=false"])
    return train(cfg, tracking_uri=mlflow_server.uri)


@pytest.fixture(scope="module")
def test_images(cvae_run):
    return latent.load_images("mnist10k", "test", (28, 28, 1), (0.0, 1.0), limit=400)


def test_cvae_smoke_run_save_load_export(cvae_run):
    r = cvae_run
    assert np.isfinite(r.final_metrics["loss"])
    z = np.random.default_rng(0).standard_normal((6, LATENT)).astype("float32")
    y = np.arange(6, dtype="int32")
    loaded = load_model(r.model_path)
    np.testing.assert_array_equal(loaded.generate(z, y), r.model.generate(z, y))
    manifest = verify_export(r.export_dir).manifest
    assert manifest["conditional"] and manifest["num_classes"] == 10
    assert [i["name"] for i in manifest["endpoints"]["generate"]["inputs"]] == ["z", "label"]
    assert [i["name"] for i in manifest["endpoints"]["encode"]["inputs"]] == ["x", "label"]


def test_tools_on_the_export_match_the_model_in_memory(cvae_run, test_images):
    x, y = test_images
    # The export holds the trained weights in float32: it matches the model's float32 twin.
    exported = latent.ExportReader(cvae_run.export_dir)
    in_memory = latent.InMemoryModel(float32_twin(cvae_run.model))
    assert exported.has_encoder and exported.conditional and exported.latent_dim == LATENT
    np.testing.assert_allclose(exported.encode(x[:20], y[:20]), in_memory.encode(x[:20], y[:20]),
                               atol=1e-4)
    a, _ = latent.traversal_grid(exported, dims=[0, 2], steps=4, label=5)
    b, _ = latent.traversal_grid(in_memory, dims=[0, 2], steps=4, label=5)
    assert a.shape == (8, 28, 28, 1)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_tool_shapes_on_the_export(cvae_run, test_images):
    x, y = test_images
    m = latent.ExportReader(cvae_run.export_dir)
    strips = latent.image_interpolation_strips(m, x[:3], x[3:6], steps=6, labels=y[:3])
    assert strips.shape == (3 * 8, 28, 28, 1)
    np.testing.assert_array_equal(strips[0], x[0])  # each row: real start, 6 decoded, real end
    np.testing.assert_array_equal(strips[7], x[3])
    grid, ncols = latent.arithmetic_grid(m, x, y, 1, 7, count=4, scales=(0, 1, 2))
    assert grid.shape == (16, 28, 28, 1) and ncols == 4
    grid, n = latent.manifold_grid(m, n=5, dims=(0, 2), label=3)
    assert grid.shape == (25, 28, 28, 1) and n == 5
    assert latent.encoded_scatter(m, x, y).shape == (640, 730, 3)
    with pytest.raises(ValueError, match="class-conditional"):
        m.generate(np.zeros((2, LATENT)))
    with pytest.raises(ValueError, match=r"unknown class\(es\) \[10\]"):
        latent.traversal_grid(m, steps=3, label=10)
    with pytest.raises(ValueError, match="unknown class 11"):
        latent.arithmetic_grid(m, x, y, 1, 11)


def _png_size(path):
    with Image.open(path) as im:
        return im.size


def test_cli_from_a_run_id_logs_pngs_to_the_run(cvae_run, mlflow_server, tmp_path, capsys):
    from mlflow import MlflowClient

    base = ["--run-id", cvae_run.run_id, "--tracking-uri", mlflow_server.uri]
    cases = {  # tool: (arguments, expected PNG size at scale 2)
        "interpolate": (["--method", "both", "--pairs", "2", "--steps", "8", "--limit", "300"],
                        ((10 * 30 + 2) * 2, (4 * 30 + 2) * 2)),
        "arithmetic": (["--from-class", "1", "--to-class", "7", "--count", "3", "--limit", "300"],
                       ((6 * 30 + 2) * 2, (3 * 30 + 2) * 2)),
        "traverse": (["--steps", "5", "--index", "0", "--limit", "10"],
                     ((5 * 30 + 2) * 2, (LATENT * 30 + 2) * 2)),
        "manifold": (["--n", "4", "--label", "2"], ((4 * 30 + 2) * 2,) * 2),
        "scatter": (["--limit", "300"], (730, 640)),
    }
    for tool, (args, size) in cases.items():
        out = tmp_path / f"{tool}.png"
        assert cli.main(["latent", tool, *base, "--out", str(out), *args]) == 0, tool
        assert _png_size(out) == size, tool
    logged = {a.path for a in MlflowClient(mlflow_server.uri).list_artifacts(cvae_run.run_id, "latent")}
    assert logged == {f"latent/{t}.png" for t in cases}
    assert cli.main(["latent", "manifold", *base, "--out", str(tmp_path / "x.png"),
                     "--label", "12"]) == 2
    assert "unknown class(es) [12]" in capsys.readouterr().err


def test_run_download_is_verified_and_repaired(cvae_run, mlflow_server):
    path = download_run_export(cvae_run.run_id, mlflow_server.uri)
    (path / "generate.onnx").write_bytes(b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="generate.onnx"):
        verify_export(path).manifest
    again = download_run_export(cvae_run.run_id, mlflow_server.uri)  # fetched anew
    assert verify_export(again).manifest["source_run_id"] == cvae_run.run_id
    with pytest.raises(ModelSourceError, match="could not be read from"):
        download_run_export("0" * 32, mlflow_server.uri)
    with pytest.raises(ModelSourceError, match="not an MLflow run id"):
        download_run_export("../../etc", mlflow_server.uri)  # never used as a path part


@pytest.fixture
def generator_only_export(cvae_run, tmp_path):
    """What a GAN exports: a manifest with nothing but 'generate' (z, label → image)."""
    src, dst = cvae_run.export_dir, tmp_path / "generator"
    dst.mkdir()
    shutil.copy(src / "generate.onnx", dst / "generate.onnx")
    manifest = verify_export(src).manifest
    manifest.update(kind="gan-like", endpoints={"generate": manifest["endpoints"]["generate"]},
                    files={"generate.onnx": sha256_file(dst / "generate.onnx")})
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_generator_only_export_interpolates_and_traverses_in_z(generator_only_export, tmp_path,
                                                                capsys):
    base = ["--export", str(generator_only_export)]
    out = tmp_path / "i.png"
    assert cli.main(["latent", "interpolate", *base, "--out", str(out), "--pairs", "3",
                     "--steps", "5", "--label", "4"]) == 0
    assert _png_size(out) == ((5 * 30 + 2) * 2, (3 * 30 + 2) * 2)  # prior codes, no real ends
    assert cli.main(["latent", "traverse", *base, "--out", str(out), "--label", "4"]) == 0
    assert cli.main(["latent", "arithmetic", *base, "--out", str(out), "--from-class", "1",
                     "--to-class", "7"]) == 2
    assert "needs an encoder" in capsys.readouterr().err
    assert cli.main(["score", *base, "--data", "mnist10k", "--limit", "10",
                     "--out", str(tmp_path / "s.csv")]) == 2
    assert "no 'score' operation" in capsys.readouterr().err
