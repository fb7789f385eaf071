"""The factor data reach a model: the existing ``vae`` kind trains for real on a small dsprites
subset at 64x64x1 through ``gen_keras.training.train``, and its encoder's codes of held-out
images go through the disentanglement metrics."""
import numpy as np

from gen_keras.config_loader import load_config
from gen_keras.data import load_factor_split
from gen_keras.eval import disentanglement as dm
from gen_keras.training import train

from conftest import ROOT


def test_vae_trains_on_a_dsprites_subset(tmp_path, data_cache):
    cfg = load_config(ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml", [
        "data.dataset=dsprites:2000", "model.image_shape=[64,64,1]", "model.latent_dim=6",
        "model.filters=8", "model.hidden=64", "model.decoder=conv", "train.epochs=2",
        "train.batch_size=64", "train.steps_per_execution=1", "train.progress=false",
        "train.evaluate_at_end=false", "train.export_at_end=false", "tracking.run_name=dsprites-vae",
        f"tracking.outputs_dir={tmp_path / 'outputs'}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    result = train(cfg)
    loss = result.history["loss"]
    assert len(loss) == 2 and np.isfinite(loss).all() and loss[1] < loss[0]
    # 64 x 64 = 4096 Bernoulli pixels, mostly black: after two short epochs the negative ELBO
    # is already far below the 4096 log 2 = 2839 nats of a coin flip per pixel (~950 here).
    assert result.final_metrics["loss"] < 4096 * np.log(2) / 2

    model = result.model
    split = load_factor_split(cfg.data, "test", limit=300, value_range=(0.0, 1.0))
    codes = np.asarray(model.encode(split.images)[0])
    assert codes.shape == (len(split.images), 6) and np.isfinite(codes).all()
    scores = {"mig": dm.mutual_information_gap(codes, split.factors), **dm.dci(codes, split.factors)}
    assert all(0.0 <= v <= 1.0 for v in scores.values()), scores
