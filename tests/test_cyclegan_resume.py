"""CycleGAN's four optimizers survive a kill: ``gen-keras train`` is SIGKILLed during epoch 2
(a real process against a real MLflow server), the same command resumes from the epoch-1
checkpoint in the same run, and every optimizer's step counter and both history pools continue."""
from __future__ import annotations

import tensorflow as tf
from mlflow import MlflowClient
from test_faults import epochs_logged, kill_in_epoch_2, optimizer_iterations, the_run

from gen_keras.training.checkpoint import read_state

from conftest import ROOT

CONFIG = ROOT / "pipelines" / "configs" / "cyclegan_mnistm.yaml"
SMALL = ["model.g_filters=4", "model.residual_blocks=1", "model.d_filters=4"]
OPTIMIZERS = ("g_ab_optimizer", "g_ba_optimizer", "d_a_optimizer", "d_b_optimizer")


def test_sigkill_mid_training_resumes_with_all_four_optimizers(mlflow_server, tmp_path, data_cache, capfd,
                                                               monkeypatch):
    """Killed during epoch 2; the same command resumes from the epoch-1 checkpoint in the same
    MLflow run, and every optimizer's step counter continues (a fresh one would restart at 0)."""
    out, name, steps = tmp_path / "out", "cyclegan-killed", 256 // 16
    args = ["--config", str(CONFIG), "--tracking-uri", mlflow_server.uri]
    for item in ["train.epochs=3", "data.limit_train=256", "data.limit_test=32", "train.batch_size=16",
                 f"tracking.outputs_dir={out}", f"tracking.run_name={name}", "train.export_at_end=false",
                 "train.evaluate_at_end=false", *SMALL]:
        args += ["--set", item]
    ckpt_dir = out / "checkpoints" / name
    killed = kill_in_epoch_2(args, tmp_path, data_cache, ckpt_dir)
    assert optimizer_iterations(str(ckpt_dir / "tf" / "ckpt-1")) == {n: steps for n in OPTIMIZERS}
    reader = tf.train.load_checkpoint(str(ckpt_dir / "tf" / "ckpt-1"))
    counts = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "pool" in k and "count" in k]
    assert sorted(int(c) for c in counts) == [50, 50]  # both pools full, saved with the model

    from gen_keras.cli import main as cli

    monkeypatch.chdir(tmp_path)
    assert cli(["train", *args]) == 0
    output = capfd.readouterr().out
    assert "Epoch 1/3" not in output and "Epoch 2/3" in output and "Epoch 3/3" in output
    done = read_state(ckpt_dir)
    assert done["finished"] and done["epochs_done"] == 3 and done["run_id"] == killed["run_id"]
    assert optimizer_iterations(str(ckpt_dir / "tf" / "ckpt-3")) == {n: 3 * steps for n in OPTIMIZERS}
    client = MlflowClient(mlflow_server.uri)
    run = the_run(client, name)
    assert run.info.status == "FINISHED" and run.data.tags["gen_keras.resumed_from_epoch"] == "1"
    for metric in ("epoch/g_loss", "epoch/d_a_loss", "epoch/val_cycle_a"):
        assert epochs_logged(client, run.info.run_id, metric) == [1, 2, 3], metric
