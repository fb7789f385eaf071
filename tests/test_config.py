"""Config loading and validation: every bad field is rejected with its name, before training."""
import pytest

from gen_keras.config_loader import load_config
from gen_keras.errors import ConfigError
from gen_keras.tracking import flat_record

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
VAE = ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml"


def test_quickstart_config_loads_with_defaults():
    cfg = load_config(VAE)
    assert cfg.model.kind == "vae" and tuple(cfg.model.image_shape) == (28, 28, 1)
    assert cfg.data.dataset == "mnist10k" and cfg.train.batch_size == 128
    flat = flat_record(cfg.to_dict())  # as the run record reads it back
    assert flat["model.kind"] == "vae" and flat["model.image_shape"] == "[28, 28, 1]"


def test_overrides_apply_and_coerce():
    cfg = load_config(VAE, ["train.epochs=3", "model.latent_dim=2", "train.jit_compile=true"])
    assert cfg.train.epochs == 3 and cfg.model.latent_dim == 2 and cfg.train.jit_compile is True


@pytest.mark.parametrize("override, field", [
    ("model.kind=nope", "model.kind"),
    ("model.image_shape=[30,30,1]", "model.image_shape"),
    ("model.latent_dim=0", "model.latent_dim"),
    ("model.likelihood=poisson", "model.likelihood"),
    ("model.banana=1", "model.banana"),
    ("train.epochs=-1", "train.epochs"),
    ("train.batch_size=abc", "train.batch_size"),
    ("train.lr_scaling=sqrt", "train.lr_scaling"),
    ("train.mixed_precision=fp8", "train.mixed_precision"),
    ("data.dataset=imagenet", "data.dataset"),
    ("data.dataset=folder:/no/such/folder", "data.dataset"),
    ("data.dataset=npz:/no/such/file.npz", "data.dataset"),
    ("data.test_fraction=1.5", "data.test_fraction"),
    ("distribute.strategy=horovod", "distribute.strategy"),
    ("model.num_classes=10", "model.num_classes"),
])
def test_bad_fields_are_named(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("[", r"\[")):
        load_config(VAE, [override])


def test_unknown_section_and_malformed_override(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {kind: vae}\ntrainer: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="trainer"):
        load_config(bad)
    with pytest.raises(ConfigError, match="section.field"):
        load_config(VAE, ["epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
