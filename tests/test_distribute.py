"""Distribution on the two logical CPUs conftest.py sets up: every model kind under
``distribute.strategy=mirrored``, the 2-replica step against the 1-device step, the data sharding
a multi-worker run relies on, and the Keras internals the multi-worker workarounds lean on.

The real two-process multi-worker run is in tests/test_multiworker.py.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gen_keras import distribute
from gen_keras.config import DistributeConfig
from gen_keras.config_loader import load_config
from gen_keras.data import make_datasets
from gen_keras.errors import ConfigError
from gen_keras.models import build_model, model_config_class, model_kinds
from gen_keras.plan import resolve_plan
from gen_keras.tracking import logged_config

ROOT = Path(__file__).resolve().parents[1]
TWO_CPUS = '["/cpu:0","/cpu:1"]'
# steps_per_execution=1: these tests count and compare single steps on one- or two-batch data sets.
MIRRORED = ["distribute.strategy=mirrored", f"distribute.devices={TWO_CPUS}", "train.steps_per_execution=1"]


def kind_config(kind: str, overrides: list[str]):
    """The kind's shipped config when there is one (pipelines/configs), else its defaults; in
    float32 unless an override names a precision (steps are compared to 1e-5 here)."""
    overrides = ["train.mixed_precision=none", *overrides]
    if hasattr(model_config_class(kind), "dataset_size"):  # beta-TCVAE's N (train() fills it)
        overrides.append("model.dataset_size=64")
    path = ROOT / "pipelines" / "configs" / f"{kind}_mnist10k.yaml"
    if path.is_file():
        return load_config(path, overrides)
    return load_config(None, [f"model.kind={kind}", *overrides])


def build_in(strategy, cfg):
    """The model as the trainer builds it: in the strategy scope, compiled for the plan, given the
    trained networks it declares (SRGAN's content network)."""
    from gen_keras.eval.translation import hand_in_pretrained

    keras.utils.set_random_seed(cfg.train.seed)
    plan = resolve_plan(cfg, distribute.layout(strategy))
    with strategy.scope():
        model = build_model(cfg.model, precision=plan.precision)
        model.compile_for_training(plan)
    hand_in_pretrained(model, cfg)
    return model


# ------------------------------------------------------------------------------------------
# Keras internals the multi-worker workarounds depend on (keras-team/keras#20585)
# ------------------------------------------------------------------------------------------
def test_keras_private_hooks_still_exist():
    """If this fails, Keras changed the code GenerativeModel._maybe_symbolic_build and
    update_trackers work around: re-check both against the new Keras before upgrading."""
    from keras.src.backend.tensorflow import trainer

    hint = ("Keras changed; re-check the multi-worker workarounds in gen_keras/models/base.py "
            "(keras-team/keras#20585) and the two-process test tests/test_multiworker.py")
    hook = getattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build", None)
    assert hook is not None, hint
    assert list(inspect.signature(hook).parameters) == ["self", "iterator", "data_batch"], hint
    for method in (trainer.TensorFlowTrainer.fit, trainer.TensorFlowTrainer.evaluate):
        assert "self._maybe_symbolic_build(" in inspect.getsource(method), hint
    # Step outputs are reduced across workers along axis 0 -> metrics must have shape [1] there.
    assert 'strategy.reduce("MEAN", v, axis=0)' in inspect.getsource(trainer.reduce_per_replica), hint


def test_a_built_model_skips_the_symbolic_build(data_cache):
    cfg = kind_config("vae", ["data.limit_train=64", "train.batch_size=32"])
    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))
    with strategy.scope():
        model = build_model(cfg.model)
        assert not model._fully_built()  # no optimizer yet: Keras' own build path still runs
        model.compile_for_training(resolve_plan(cfg, distribute.layout(strategy)))
    assert model._fully_built()
    # Called with no data at all: it must return before Keras would draw a batch.
    assert model._maybe_symbolic_build(iterator=None, data_batch=None) is None


# ------------------------------------------------------------------------------------------
# Every kind, one epoch, two replicas
# ------------------------------------------------------------------------------------------
# Narrow networks where the shipped ones take long to build: the replicas' mechanics are the
# same at any width.
NARROW = {
    "autoencoder": ["model.filters=8", "model.hidden=32"],
    "cyclegan": ["model.g_filters=4", "model.residual_blocks=1", "model.d_filters=4"],
    "pix2pix": ["model.g_filters=8", "model.d_filters=8"],
    "sr_l1": ["model.g_filters=4", "model.residual_blocks=1"],
    "srgan": ["model.g_filters=4", "model.residual_blocks=1", "model.d_filters=8", "model.d_dense=16"],
    "stylegan": ["model.g_filters=4", "model.d_filters=4", "model.max_filters=16", "model.w_dim=16",
                 "model.latent_dim=16", "model.mapping_layers=2"],
    "wgan_gp": ["model.g_filters=8", "model.d_filters=8"],
}


@pytest.mark.parametrize("kind", model_kinds())
def test_every_kind_trains_one_epoch_on_two_cpus(kind, data_cache):
    d_steps = int(getattr(kind_config(kind, []).model, "d_steps", 1))
    batch = 2 * 8 * d_steps  # 8 images per replica per discriminator step
    cfg = kind_config(kind, [*MIRRORED, *NARROW.get(kind, []), f"train.batch_size={batch}", f"data.limit_train={2 * batch}",
                             "data.limit_test=32", "train.epochs=1"])
    strategy = distribute.make_strategy(cfg.distribute)
    assert strategy.num_replicas_in_sync == 2
    model = build_in(strategy, cfg)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(make_datasets(cfg).train, epochs=1, verbose=0).history

    assert set(history) == set(model.tracker_names)
    for name, values in history.items():
        assert len(values) == 1 and np.isfinite(values[0]), (name, values)
    for name, opt in model.optimizers_to_track().items():
        steps = int(opt.iterations.numpy())
        assert steps > 0 and steps % 2 == 0, (name, steps)  # 2 global steps (x its updates/step)
    moved = max(float(np.abs(w.numpy() - b).max()) for w, b in zip(model.trainable_weights, before))
    assert moved > 0.0
    # Mirrored: both replicas hold the same trainable values after the all-reduced updates.
    # (Batch-norm moving statistics are replica-local in Keras 3 under MirroredStrategy — each
    # replica averages its own share of the batch, as unsynchronized BN does; see docs/scaling.md.)
    for w in model.trainable_weights:
        copies = [c.numpy() for c in strategy.experimental_local_results(w.value)]
        assert len(copies) == 2 and np.array_equal(copies[0], copies[1]), w.path


def test_two_replica_step_equals_one_device_step(data_cache):
    """One SGD step of the VAE on 2 replicas == one step on 1 device, same global batch.

    SGD, not Adam: Adam's first update is ~lr * sign(g), blind to a wrongly scaled gradient;
    SGD's update is lr * g, so a loss not averaged over the GLOBAL batch shows up as 2x.
    """
    cfg = kind_config("vae", [*MIRRORED, "train.batch_size=64", "data.limit_train=64",
                              "train.optimizer=sgd", "train.learning_rate=0.05"])
    batch = next(iter(make_datasets(cfg).train))
    one_batch = tf.data.Dataset.from_tensors(batch)

    def one_step(strategy):
        model = build_in(strategy, cfg)
        start = [w.numpy().copy() for w in model.trainable_weights]
        logs = model.fit(one_batch, epochs=1, verbose=0).history
        return start, [w.numpy() for w in model.trainable_weights], logs

    start1, after1, logs1 = one_step(tf.distribute.get_strategy())
    start2, after2, logs2 = one_step(distribute.make_strategy(cfg.distribute))
    assert all(np.array_equal(a, b) for a, b in zip(start1, start2))
    step = max(float(np.abs(a - s).max()) for a, s in zip(after1, start1))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(after1, after2))
    assert step > 1e-3  # the step moved the weights far beyond the tolerance below
    assert diff <= 1e-5, f"2-replica step differs from 1-device step by {diff}"
    assert logs1["loss"][0] == pytest.approx(logs2["loss"][0], rel=1e-5)


def test_replicas_draw_different_noise_that_matches_one_device():
    cfg = kind_config("vae", [])
    strategy = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))

    def draw(strategy_):
        keras.utils.set_random_seed(0)
        with strategy_.scope():
            model = build_model(cfg.model)
        per_replica = 6 // strategy_.num_replicas_in_sync  # global batch 6
        fn = tf.function(lambda: model.replica_normal(per_replica, [4]))
        out = strategy_.run(fn) if strategy_.num_replicas_in_sync > 1 else fn()
        return [t.numpy() for t in strategy_.experimental_local_results(out)]

    r0, r1 = draw(strategy)
    (single,) = draw(tf.distribute.get_strategy())
    assert not np.allclose(r0, r1)
    np.testing.assert_array_equal(np.concatenate([r0, r1]), single)


# ------------------------------------------------------------------------------------------
# The data a multi-worker run gets: auto-shard policy DATA, effective for every source kind
# ------------------------------------------------------------------------------------------
@pytest.fixture
def npz_source(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "digits.npz"
    np.savez(path, x=rng.integers(0, 256, (160, 28, 28), dtype=np.uint8),
             y=rng.integers(0, 10, 160))
    return f"npz:{path}"


@pytest.mark.parametrize("source", ["mnist10k", "npz"])
def test_auto_shard_gives_each_worker_a_disjoint_half(source, npz_source, data_cache):
    """What MultiWorkerMirroredStrategy applies to the input pipeline, run for 2 workers:
    the workers' examples are disjoint and together make up the epoch (FILE sharding of the
    one-file TFDS source would fail or starve a worker instead)."""
    from tensorflow.python.distribute import input_ops

    dataset = npz_source if source == "npz" else "mnist10k"
    cfg = kind_config("vae", [f"data.dataset={dataset}", "data.limit_train=128",
                              "train.batch_size=16"])
    train = make_datasets(cfg).train
    assert (train.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)

    def digests(ds):
        return [hashlib.sha1(img.tobytes()).hexdigest() for x, _ in ds for img in x.numpy()]

    # A fresh pipeline per worker, as each worker process builds its own (a shared one would
    # share its shuffle's reshuffle state between the two shards).
    everything = digests(train)
    shards = [digests(input_ops.auto_shard_dataset(make_datasets(cfg).train, 2, i, 2))
              for i in range(2)]
    assert len(everything) == 128 and [len(s) for s in shards] == [64, 64]
    assert sorted(shards[0] + shards[1]) == sorted(everything)


# ------------------------------------------------------------------------------------------
# Config: strategy errors, derived values, chief, threads
# ------------------------------------------------------------------------------------------
def test_strategy_config_errors_name_the_field(monkeypatch):
    with pytest.raises(ConfigError, match="distribute.devices.*/gpu:7"):
        distribute.make_strategy(DistributeConfig("mirrored", ["/gpu:7"]))
    with pytest.raises(ConfigError, match="distribute.devices.*only read by strategy 'mirrored'"):
        distribute.make_strategy(DistributeConfig("default", ["/cpu:0"]))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.make_strategy(DistributeConfig("multi_worker"))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy(DistributeConfig("multi_worker"))
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]},
                                                "task": {"type": "worker", "index": 3}}))
    with pytest.raises(ConfigError, match="worker:3 is not in the cluster"):
        distribute.make_strategy(DistributeConfig("multi_worker"))
    with pytest.raises(ConfigError, match="distribute.strategy"):
        load_config(None, ["distribute.strategy=ring"])
    with pytest.raises(ConfigError, match="train.intra_op_threads"):
        load_config(None, ["train.intra_op_threads=-1"])


def test_batch_must_split_across_replicas(tmp_path, data_cache):
    from gen_keras.training import train

    cfg = kind_config("vae", [*MIRRORED, "train.batch_size=63",
                              f"tracking.outputs_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="train.batch_size=63 must be divisible by the 2 replicas"):
        train(cfg, tracking_uri=f"sqlite:///{tmp_path / 'never.db'}")
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
])
def test_is_chief(tf_config, chief, monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert distribute.is_chief() is chief


def test_mirrored_run_logs_global_batch_lr_scaling_and_per_replica_batch(
        tmp_path, data_cache, mlflow_server):
    """A real mirrored training run: the derived values land in MLflow next to the config."""
    from mlflow import MlflowClient

    from gen_keras.training import train

    cfg = kind_config("vae", [*MIRRORED, "train.batch_size=64", "train.lr_scaling=linear",
                              "train.learning_rate=0.001", "train.epochs=1",
                              "train.steps_per_execution=4",
                              "data.limit_train=128", "data.limit_test=64", "train.progress=false",
                              "train.evaluate_at_end=false", "train.export_at_end=false",
                              "tracking.experiment=distribute-test",
                              f"tracking.outputs_dir={tmp_path}"])
    result = train(cfg, tracking_uri=mlflow_server.uri)
    params = logged_config(MlflowClient(mlflow_server.uri), result.run_id)  # the run's config.yaml
    assert params["train.batch_size"] == "64"
    assert params["train.lr_scaling"] == "linear"
    assert params["derived.replicas"] == "2"
    assert params["derived.per_replica_batch"] == "32"
    assert params["derived.workers"] == "1"
    assert params["derived.strategy"] == "MirroredStrategy"
    # keras-team/keras#19246: one step per execution under a mirrored strategy
    assert (params["train.steps_per_execution"], params["derived.steps_per_execution"]) == ("4", "1")
    assert int(result.model.optimizer.iterations.numpy()) == 2  # 128 images / 64
    assert json.loads(params["derived.learning_rate"]) == {"optimizer": pytest.approx(0.002)}
    assert float(keras.ops.convert_to_numpy(result.model.optimizer.learning_rate)) == pytest.approx(0.002)


def test_thread_settings_apply_at_startup_and_warn_later(caplog):
    code = ("from gen_keras.distribute import configure_threads; "
            "print(configure_threads(1, 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(1, 1)"
    # In this process TF's runtime is already up: the request cannot apply and says so.
    tf.constant(1.0) + 1.0
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    with caplog.at_level("WARNING", logger="gen_keras.distribute"):
        assert distribute.configure_threads(current[0] + 3, 0) == current
    assert "train.intra_op_threads" in caplog.text and "not applied" in caplog.text


# ------------------------------------------------------------------------------------------
# Mixed precision (bfloat16 on CPU): hidden layers in bf16, outputs and losses in float32
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_mixed_bfloat16_step_keeps_outputs_and_losses_float32(kind, data_cache):
    d_steps = int(getattr(kind_config(kind, []).model, "d_steps", 1))
    sets = [f"train.batch_size={16 * d_steps}", f"data.limit_train={16 * d_steps}"]
    batch = tf.data.Dataset.from_tensors(next(iter(make_datasets(kind_config(kind, sets)).train)))

    def one_step(policy):
        cfg = kind_config(kind, [*sets, f"train.mixed_precision={policy}"])
        model = build_in(tf.distribute.get_strategy(), cfg)
        return model, model.fit(batch, epochs=1, verbose=0).history

    model, logs = one_step("mixed_bfloat16")
    _, logs32 = one_step("none")
    hidden = {layer.compute_dtype for net in model.layers for layer in getattr(net, "layers", [])}
    assert "bfloat16" in hidden  # the policy reached the networks
    z = model.sample_latent(4, seed=0)
    labels = np.arange(4, dtype=np.int32) if model.config.num_classes else None
    assert model.generate(z, labels).dtype == tf.float32  # the last layer stays float32
    for tracker in model.metrics:
        assert tracker.result().dtype == tf.float32
    for name, values in logs.items():
        assert np.isfinite(values[0])
        if "loss" in name:  # the first step from the same weights: bf16 rounding only
            assert values[0] == pytest.approx(logs32[name][0], rel=0.02), name


def test_a_mixed_precision_model_exports_as_float32(tmp_path):
    """bf16 networks do not convert to ONNX (onnxruntime refuses their mixed-type MatMuls); the
    trainer exports a float32 twin with the same weights instead."""
    from gen_keras.export import export_model
    from gen_keras.exported.manifest import verify_export
    from gen_keras.precision import float32_twin, is_float32

    cfg = kind_config("vae", ["train.mixed_precision=mixed_bfloat16"])
    model = build_in(tf.distribute.get_strategy(), cfg)
    assert not is_float32(model)
    twin = float32_twin(model)
    assert is_float32(twin) and float32_twin(twin) is twin
    assert {layer.compute_dtype for net in twin.layers for layer in net.layers} == {"float32"}
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), model.get_weights()))
    z = model.sample_latent(4, seed=0)
    np.testing.assert_allclose(twin.generate(z), model.generate(z), atol=0.05)  # bf16 rounding
    # The exporter makes the twin itself: a bf16 model goes in, float32 graphs come out.
    export_model(model, tmp_path / "export", run_id="test", name="bf16", overwrite=True)
    assert "generate" in verify_export(tmp_path / "export").manifest["endpoints"]


def test_steps_per_execution_falls_back_to_one_under_mirrored(caplog):
    """keras-team/keras#19246: several steps per call die under MirroredStrategy in this Keras;
    training runs one step per call there (and says so), and keeps the setting elsewhere."""
    mirrored = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))
    with caplog.at_level("WARNING", logger="gen_keras.distribute"):
        assert distribute.supported_steps_per_execution(4, mirrored) == 1
    assert "keras-team/keras#19246" in caplog.text and "train.steps_per_execution=4" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="gen_keras.distribute"):  # fine_tune names its own setting
        assert distribute.supported_steps_per_execution(5, mirrored, "fine_tune's batches per pass") == 1
    assert "fine_tune's batches per pass=5 is not supported" in caplog.text
    assert distribute.supported_steps_per_execution(4, tf.distribute.get_strategy()) == 4
    assert distribute.supported_steps_per_execution(1, mirrored) == 1


def test_keras_still_fails_with_several_steps_per_execution_under_mirrored():
    """The upstream bug the fallback above works around, on a plain Keras model. When this
    test fails, Keras fixed it: drop ``supported_steps_per_execution``."""
    mirrored = distribute.make_strategy(DistributeConfig("mirrored", ["/cpu:0", "/cpu:1"]))
    with mirrored.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse", steps_per_execution=2)
    data = tf.data.Dataset.from_tensor_slices((np.ones((64, 4), "float32"),
                                               np.ones((64, 1), "float32"))).batch(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must feed a value for placeholder"):
        model.fit(data, epochs=1, verbose=0)


def test_auto_precision_resolves_per_machine_and_checkpoints_keep_the_concrete_policy():
    """``auto`` follows the hardware (bf16 here only if the CPU has it), is bf16 on a TPU, and
    a checkpoint records the resolved policy, so it never resumes in another precision."""
    from gen_keras import precision

    cfg = kind_config("vae", ["train.mixed_precision=auto"])
    has_bf16 = bool(precision.cpu_flags() & {"avx512_bf16", "amx_bf16"})
    want = "mixed_bfloat16" if has_bf16 else "none"
    assert precision.resolve("auto") == precision.resolve("auto", cfg.distribute.strategy) == want
    assert resolve_plan(cfg).resumable()["train"]["mixed_precision"] == want
    assert precision.resolve("none") == "none"  # named policies pass through
    tpu = kind_config("vae", ["train.mixed_precision=auto", "distribute.strategy=tpu"])
    assert precision.resolve("auto", tpu.distribute.strategy) == "mixed_bfloat16"
    # A model built under a policy keeps it through get_config (what load_model uses).
    model = build_model(cfg.model, precision="mixed_bfloat16")
    assert model.precision == "mixed_bfloat16" and not precision.is_float32(model)
    again = type(model).from_config(model.get_config())
    assert again.precision == "mixed_bfloat16"
    assert precision.float32_twin(model).precision == "float32"


def test_auto_resumes_a_checkpoint_in_the_precision_it_was_written_in():
    """A checkpoint written when ``auto`` resolved to bfloat16 (another rule, another machine)
    resumes in bfloat16 with an otherwise identical config, whatever ``auto`` says now; a real
    config difference is still refused, and a named policy is never overridden."""
    from gen_keras.plan import adopt_checkpoint_precision
    from gen_keras.precision import keras_policy
    from gen_keras.training.trainer import check_resumable

    plan = resolve_plan(kind_config("vae", ["train.mixed_precision=auto"]))
    other = "none" if plan.precision == "mixed_bfloat16" else "mixed_bfloat16"
    written = plan.resumable()
    written["train"]["mixed_precision"] = other
    with pytest.raises(ConfigError, match="different config") as refused:
        check_resumable(plan, "r", {"config": written})
    # The refusal names what differs, in the config's own spelling.
    assert f"train.mixed_precision: checkpoint {other!r}, now " in str(refused.value)
    with pytest.raises(ConfigError, match="the checkpoint records no config"):
        check_resumable(plan, "r", {})
    adopted = adopt_checkpoint_precision(plan, {"config": written})
    assert adopted.precision == keras_policy(other) and adopted.resumable() == written
    # The one resolution the trainer makes adopts it the same way.
    resumed = resolve_plan(plan.config, checkpoint={"config": written})
    assert resumed.precision == keras_policy(other) and resumed.resumable() == written
    check_resumable(adopted, "r", {"config": written})
    assert adopt_checkpoint_precision(plan, None) is plan
    changed = {**written, "train": {**written["train"], "epochs": written["train"]["epochs"] + 1}}
    assert adopt_checkpoint_precision(plan, {"config": changed}) is plan  # not only the precision differs
    named = resolve_plan(kind_config("vae", ["train.mixed_precision=none"]))
    assert adopt_checkpoint_precision(named, {"config": {**written, "train": {**written["train"], "mixed_precision": "mixed_bfloat16"}}}) is named
