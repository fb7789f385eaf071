"""beta-TCVAE and FactorVAE: their losses against numpy and hand values, the FactorVAE
permutation, and a short real training of each kind at 64x64x1 on a dsprites subset through
``gen_keras.training.train`` — loss falling, save/load with both FactorVAE optimizers, and the
disentanglement metrics, heat map and traversals logged at the end of the run."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from mlflow import MlflowClient

from gen_keras import disentanglement_losses as dl
from gen_keras.artifacts import load_model
from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError
from gen_keras.models import build_model
from gen_keras.tracking import logged_config
from gen_keras.training import train

SMALL = ["model.image_shape=[64,64,1]", "model.latent_dim=6", "model.filters=8", "model.hidden=64",
         "model.decoder=conv"]


# ------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------
def _tiny_batch():
    rng = np.random.default_rng(3)
    mean = rng.normal(0.0, 1.0, (3, 2))
    log_var = rng.normal(-1.0, 0.3, (3, 2))
    z = mean + np.exp(0.5 * log_var) * rng.normal(size=(3, 2))
    return z, mean, log_var


def _numpy_mws(z, mean, log_var, n):
    """The MWS formula of Chen et al. 2018 (sec. 4.1) written out with loops."""
    m, dims = z.shape

    def log_q(i, j, d):  # log N(z_id; mean_jd, var_jd)
        var = math.exp(log_var[j, d])
        return -0.5 * math.log(2 * math.pi * var) - (z[i, d] - mean[j, d]) ** 2 / (2 * var)

    log_qz, log_prod = [], []
    for i in range(m):
        joint = [sum(log_q(i, j, d) for d in range(dims)) for j in range(m)]
        log_qz.append(math.log(sum(math.exp(v) for v in joint)) - math.log(n * m))
        log_prod.append(sum(math.log(sum(math.exp(log_q(i, j, d)) for j in range(m))) - math.log(n * m)
                            for d in range(dims)))
    return np.array(log_qz), np.array(log_prod)


def test_mws_log_densities_match_the_formula():
    z, mean, log_var = _tiny_batch()
    got_qz, got_prod = dl.mws_log_densities(*(t.astype("float32") for t in (z, mean, log_var)), 10)
    want_qz, want_prod = _numpy_mws(z, mean, log_var, 10)
    np.testing.assert_allclose(got_qz, want_qz, rtol=1e-5)
    np.testing.assert_allclose(got_prod, want_prod, rtol=1e-5)
    # One example, N = 1: the aggregate posterior is that example's posterior.
    one = [t[:1].astype("float32") for t in (z, mean, log_var)]
    from gen_keras.losses import log_normal_diag
    np.testing.assert_allclose(dl.mws_log_densities(*one, 1)[0], log_normal_diag(*one), rtol=1e-6)
    with pytest.raises(ValueError, match="dataset_size"):
        dl.mws_log_densities(*one, 0)


def test_mss_weights_and_log_densities_match_the_formula():
    """Minibatch stratified sampling (Chen et al. 2018, appendix C.2) with B = 3, N = 10: own
    example 1/10, the next one (10 - 2) / (10 * 2) = 0.4, the remaining one 1/2."""
    z, mean, log_var = _tiny_batch()
    weights = np.exp(dl.mss_log_weights(z.astype("float32"), 10))
    np.testing.assert_allclose(weights, [[0.1, 0.4, 0.5], [0.5, 0.1, 0.4], [0.4, 0.5, 0.1]], rtol=1e-6)
    m, dims = z.shape

    def q(i, j, d):  # N(z_id; mean_jd, var_jd)
        var = math.exp(log_var[j, d])
        return math.exp(-(z[i, d] - mean[j, d]) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)

    want_qz = [math.log(sum(weights[i, j] * math.prod(q(i, j, d) for d in range(dims)) for j in range(m)))
               for i in range(m)]
    want_prod = [sum(math.log(sum(weights[i, j] * q(i, j, d) for j in range(m))) for d in range(dims))
                 for i in range(m)]
    got_qz, got_prod = dl.mss_log_densities(*(t.astype("float32") for t in (z, mean, log_var)), 10)
    np.testing.assert_allclose(got_qz, want_qz, rtol=1e-5)
    np.testing.assert_allclose(got_prod, want_prod, rtol=1e-5)
    terms = dl.tc_decomposition(*(t.astype("float32") for t in (z, mean, log_var)), 10, estimator="mss")
    np.testing.assert_allclose(terms["tc"], np.subtract(want_qz, want_prod), rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="tc_estimator='mwss'"):
        load_config(None, ["model.kind=beta_tcvae", "model.tc_estimator=mwss"])


def test_tc_decomposition_terms_and_their_sum():
    z, mean, log_var = _tiny_batch()
    terms = dl.tc_decomposition(*(t.astype("float32") for t in (z, mean, log_var)), 10)
    log_qz, log_prod = _numpy_mws(z, mean, log_var, 10)
    log_qz_x = np.sum(-0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var)), 1)
    log_pz = np.sum(-0.5 * (np.log(2 * np.pi) + z ** 2), 1)
    np.testing.assert_allclose(terms["mi"], log_qz_x - log_qz, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["tc"], log_qz - log_prod, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["dim_kl"], log_prod - log_pz, rtol=1e-4, atol=1e-5)
    # alpha = beta = gamma = 1: the single-sample KL log q(z|x) - log p(z) of the plain ELBO.
    np.testing.assert_allclose(dl.beta_tcvae_penalty(terms, 1.0, 1.0, 1.0), log_qz_x - log_pz, rtol=1e-5)
    np.testing.assert_allclose(dl.beta_tcvae_penalty(terms, 1.0, 6.0, 1.0),
                               log_qz_x - log_pz + 5.0 * (log_qz - log_prod), rtol=1e-5)


def test_identical_posteriors_give_the_known_mws_values():
    # Every posterior the same: log q(z) ~= log q(z|x) - log N and each marginal likewise, so
    # MI = log N and TC = (L - 1) log N exactly (the estimator's bias when N >> M).
    z = np.array([[0.3, -0.2, 1.0], [0.0, 0.5, -1.0]], "float32")
    zeros = np.zeros_like(z)
    terms = dl.tc_decomposition(z, zeros, zeros, 1000)
    np.testing.assert_allclose(terms["mi"], [math.log(1000)] * 2, rtol=1e-5)
    np.testing.assert_allclose(terms["tc"], [2 * math.log(1000)] * 2, rtol=1e-5)


def test_factorvae_total_correlation_and_discriminator_loss_by_hand():
    np.testing.assert_allclose(dl.factorvae_total_correlation([[0.0], [2.0], [-1.0]]), [0.0, 2.0, -1.0])
    # D = sigmoid(l): log D / (1 - D) is the logit.
    d = 1.0 / (1.0 + math.exp(-2.0))
    assert math.log(d / (1 - d)) == pytest.approx(2.0)
    got = dl.factorvae_discriminator_loss([0.0, 2.0], [0.0, -1.0]).numpy()
    want = [2 * math.log(2.0),
            -math.log(1 / (1 + math.exp(-2.0))) - math.log(1 - 1 / (1 + math.exp(1.0)))]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_permute_dims_shuffles_each_column_on_its_own():
    z = np.arange(64 * 5, dtype="float32").reshape(64, 5)  # every entry distinct
    noise = np.random.default_rng(0).uniform(size=z.shape).astype("float32")
    p = dl.permute_dims(z, noise).numpy()
    for d in range(5):
        assert sorted(p[:, d]) == sorted(z[:, d])  # a permutation of the same column
        np.testing.assert_array_equal(p[:, d], z[np.argsort(noise[:, d]), d])
    # Rows are mixed: almost no permuted row is a row of z (each column has its own order).
    original_rows = {tuple(r) for r in z}
    assert sum(tuple(r) in original_rows for r in p) <= 1
    np.testing.assert_array_equal(dl.permute_dims([[1.0, 10.0], [2.0, 20.0]], [[0.9, 0.1], [0.2, 0.5]]),
                                  [[2.0, 10.0], [1.0, 20.0]])


def test_factorvae_permutation_differs_per_replica(data_cache):
    """Under two replicas, each shuffles its own half-batch with its own noise."""
    from gen_keras import distribute
    from gen_keras.config import DistributeConfig

    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))
    with strategy.scope():
        model = build_model(load_config(None, ["model.kind=factor_vae", "model.latent_dim=4"]).model)
    noise = strategy.run(lambda: model.replica_uniform(8, [4]))
    a, b = (t.numpy() for t in strategy.experimental_local_results(noise))
    assert a.shape == b.shape == (8, 4) and not np.allclose(a, b)


def test_configs_and_dataset_size_refused_at_zero():
    with pytest.raises(ConfigError, match="dataset_size=0"):
        build_model(load_config(None, ["model.kind=beta_tcvae"]).model)
    with pytest.raises(ConfigError, match="model.beta"):
        load_config(None, ["model.kind=beta_tcvae", "model.beta=-1"])
    with pytest.raises(ConfigError, match="model.dataset_size"):
        load_config(None, ["model.kind=beta_tcvae", "model.dataset_size=-5"])
    with pytest.raises(ConfigError, match="model.discriminator_units"):
        load_config(None, ["model.kind=factor_vae", "model.discriminator_units=0"])
    m = build_model(load_config(None, ["model.kind=beta_tcvae", "model.dataset_size=100", *SMALL]).model)
    x = (np.random.default_rng(0).uniform(size=(8, 64, 64, 1)) > 0.9).astype("float32")
    terms = m.loss_terms(x)
    c = m.config
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + c.alpha * terms["mi"]
                               + c.beta * terms["tc"] + c.gamma * terms["dim_kl"], rtol=1e-5)


@pytest.mark.parametrize("kind", ["beta_tcvae", "factor_vae"])
def test_colour_64x64_steps(kind):
    """The VAE's conv networks at 64x64x3 (the colour set's shape): two real steps, finite."""
    cfg = load_config(None, [f"model.kind={kind}", "model.image_shape=[64,64,3]", "model.latent_dim=4",
                             "model.filters=8", "model.hidden=32", "model.binarize=none",
                             *(["model.dataset_size=1000"] if kind == "beta_tcvae" else []), "train.batch_size=16", "train.mixed_precision=none"])
    from gen_keras.plan import resolve_plan

    model = build_model(cfg.model)
    model.compile_for_training(resolve_plan(cfg))
    x = np.random.default_rng(0).uniform(size=(32, 64, 64, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(32, "int32"))).batch(16)
    history = model.fit(ds, epochs=1, verbose=0).history
    assert all(np.isfinite(v[0]) for v in history.values()), history
    assert model.reconstruct(x[:2]).shape == (2, 64, 64, 3)


# ------------------------------------------------------------------------------------------
# A short real training of each kind on dsprites at 64x64x1
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_cache):
    tmp = tmp_path_factory.mktemp("disentangling")
    out = {}
    for kind in ("beta_tcvae", "factor_vae"):
        cfg = load_config(None, [
            f"model.kind={kind}", *SMALL, "data.dataset=dsprites:2000", "data.limit_train=512",
            "data.limit_test=64", "train.epochs=2",
            "train.batch_size=64", "train.steps_per_execution=1", "train.progress=false",
            # One kind runs the end-of-training evaluation (the disentanglement metrics).
            f"train.evaluate_at_end={kind == 'factor_vae'}", f"train.export_at_end={kind == 'factor_vae'}",
            f"tracking.run_name=dsprites-{kind}", f"tracking.outputs_dir={tmp / 'outputs'}",
            f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}"])
        out[kind] = train(cfg)
    return out


@pytest.mark.parametrize("kind", ["beta_tcvae", "factor_vae"])
def test_each_kind_trains_on_a_dsprites_subset(runs, kind):
    result = runs[kind]
    loss = result.history["loss"]
    assert len(loss) == 2 and np.isfinite(loss).all() and loss[1] < loss[0], loss
    for name, values in result.history.items():
        assert np.isfinite(values).all(), (name, values)
    assert set(result.model.tracker_names) <= set(result.history)
    if kind == "beta_tcvae":  # N came from the data: the training images the run reads
        assert result.model.config.dataset_size == 512
        assert logged_config(MlflowClient(result.tracking_uri), result.run_id)["model.dataset_size"] == "512"
    else:  # both optimizers stepped once per batch
        steps = int(result.model.optimizer.iterations)
        assert steps == int(result.model.d_optimizer.iterations) == 2 * 512 // 64


@pytest.mark.parametrize("kind", ["beta_tcvae", "factor_vae"])
def test_save_load_same_outputs_and_both_optimizers(runs, kind):
    result = runs[kind]
    model, loaded = result.model, load_model(result.model_path)
    assert loaded.get_config() == model.get_config()
    x = (np.random.default_rng(1).uniform(size=(4, 64, 64, 1)) > 0.9).astype("float32")
    np.testing.assert_allclose(loaded.reconstruct(x), model.reconstruct(x), atol=0, rtol=0)
    names = ["optimizer"] + (["d_optimizer"] if kind == "factor_vae" else [])
    assert sorted(loaded.optimizers_to_track()) == sorted(names)
    for name in names:
        a, b = getattr(model, name), getattr(loaded, name)
        assert int(b.iterations) == int(a.iterations) > 0, name
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=va.path)
    if kind == "factor_vae":
        z = tf.random.stateless_normal([5, 6], seed=[1, 2])
        np.testing.assert_array_equal(loaded.discriminate(z), model.discriminate(z))


def test_mss_with_fewer_training_images_than_a_batch_is_refused_with_the_config():
    """MSS weighs a minibatch's other members as the rest of the data set, so N < B has no
    weights: an N set below the batch size is refused with the config, before anything is read
    (an N filled from the data is never below it: a batch larger than the data is refused)."""
    with pytest.raises(ConfigError, match=r"tc_estimator=mss needs at least train.batch_size=64 .* is 32"):
        load_config(None, ["model.kind=beta_tcvae", "model.tc_estimator=mss", "model.dataset_size=32",
                           "train.batch_size=64"])
    load_config(None, ["model.kind=beta_tcvae", "model.tc_estimator=mss", "model.dataset_size=64",
                       "train.batch_size=64"])
    load_config(None, ["model.kind=beta_tcvae", "model.dataset_size=32", "train.batch_size=64"])  # MWS


def test_disentanglement_metrics_logged_at_the_end(runs):
    result = runs["factor_vae"]
    client = MlflowClient(result.tracking_uri)
    metrics = client.get_run(result.run_id).data.metrics
    names = ["mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap",
             "factorvae_score", "betavae_score"]
    for name in names:
        assert 0.0 <= metrics[f"eval/{name}"] <= 1.0, (name, metrics)
        assert result.final_metrics[name] == pytest.approx(metrics[f"eval/{name}"])
    logged = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(result.run_id, "eval/disentanglement")}
    assert logged == {"mi_heatmap.png", "traversal.png", "code_factors.json",
                      *(f"traversal_z{j:02d}.png" for j in range(6))}
    from PIL import Image
    grid = Image.open(result.samples_dir / "disentanglement" / "traversal_z00.png")
    assert grid.width > 9 * 64  # one row of 9 steps (scaled x2)
    # The export says which factor each code carries (the page's Latent panel names its sliders by it).
    from gen_keras.exported.reader import ExportReader

    facts = ExportReader(result.export_dir).spec.facts["factors"]
    measured = json.loads((result.samples_dir / "disentanglement" / "code_factors.json").read_text())
    assert facts == measured and len(facts["dimensions"]) == 6
