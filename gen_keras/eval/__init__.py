"""Evaluation: the numbers each model kind is judged by.

- VAE family (an encoder and a decoder likelihood): test ELBO and the importance-weighted NLL
  (:mod:`gen_keras.eval.likelihood`), in nats and bits/dim.
- Every generator: FID, KID, precision/recall, density/coverage, mode coverage and (conditional
  models) conditional accuracy against the test split, in the feature space of the evaluator
  network the project trains once per data set (:mod:`gen_keras.eval.evaluator`).
- Encoders on a data set with known factors (``dsprites``, ``shapes3d``): MIG, DCI, SAP, the
  FactorVAE and beta-VAE scores and the factor-by-code mutual-information heat map
  (:mod:`gen_keras.eval.disentanglement`; docs/disentanglement.md).
- Encoders on a labelled data set: linear and few-label probes and k-means of their codes,
  beside raw pixels and PCA codes of the same width (:mod:`gen_keras.eval.probes`;
  docs/representation.md).
- Translation models (image in, image out): the family of their task — PSNR / SSIM against
  upsampling baselines, accuracy on outputs, L1 in the hole, class preservation, cycle L1, FID
  in the target domain (:mod:`gen_keras.eval.translation`).

Entry points: :func:`evaluate_model` (all metrics that fit; the training pipeline calls it at the
end of a run), :func:`gate_score` (one lower-is-better number for the retraining gate) and
:func:`load_for_eval` (a model from an MLflow run or an export folder, for ``gen-keras evaluate``).
"""
from __future__ import annotations

import re

from gen_keras.data.factor_specs import is_factor_dataset
from gen_keras.eval.evaluator import RECIPE as EVALUATOR_VERSION
from gen_keras.eval.factor_eval import END_OF_TRAINING_FACTOR_SAMPLES, is_encoder
from gen_keras.eval.likelihood import is_vae_family
from gen_keras.eval.loading import EvalTarget, load_for_eval
from gen_keras.eval.translation import is_translator

# The IWAE sample count behind gate_score("nll"): fixed, so every gate compares like with like.
GATE_IWAE_K = 100
GATE_METRICS = ("nll", "fid", "kid")
# The IWAE sample count the training pipeline uses at the end of a run: quick, already tight.
END_OF_TRAINING_IWAE_K = 100


class Metrics(dict):
    """``dict[str, float]`` of metric values, plus ``notes``: how they were measured (MLflow
    tags), and ``artifacts``: files the evaluation wrote, by name (logged beside the metrics)."""

    def __init__(self, *args, notes: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = dict(notes or {})
        self.artifacts: dict = {}


def evaluate_model(model, run_config, *, num_samples: int = 2000, seed: int = 0,
                   iwae_k: int = 100, likelihood: bool = True, sample_metrics: bool = True,
                   evaluator=None, disentanglement: bool = True,
                   factor_samples: int = END_OF_TRAINING_FACTOR_SAMPLES,
                   artifacts_dir=None, representation: bool = True, data=None) -> Metrics:
    """Every metric that fits the model kind, as ``{name: value}``.

    ``data``: the :class:`gen_keras.data.Datasets` the run trained on; its test pipeline (the
    test split, ``data.limit_test`` applied, in the model's range) is used instead of reading the
    split again (the training pipeline passes it; ``gen-keras evaluate`` reads the split).

    Translation models: the metric family of their task (:func:`gen_keras.eval.translation.translation_metrics`).
    VAE family: ``test_neg_elbo_nats|bpd`` and ``test_nll_k{iwae_k}_nats|bpd`` on the test split
    (Bernoulli decoders: a binarization seeded by ``seed``). All generators: ``fid_N``, ``kid_N``
    (+ ``_std``), ``precision_N``, ``recall_N``, ``density_N``, ``coverage_N``,
    ``classes_covered``, ``class_kl_N``, ``conditional_accuracy_N`` (conditional models) and
    ``evaluator_test_accuracy``, with N = min(num_samples, test images). ``data.limit_test`` is
    honoured, so smoke runs evaluate quickly. Encoders (VAE family, autoencoders) on a factor
    data set: ``mig``, ``dci_*``, ``sap``, ``factorvae_score``, ``betavae_score`` from
    ``factor_samples`` rendered images (:mod:`gen_keras.eval.factor_eval`); with
    ``artifacts_dir``, the heat map and traversal PNGs written there are in ``artifacts``.
    Encoders on any labelled data set: ``probe_linear_*``, ``probe_{100,1000}_labels_*``,
    ``kmeans_{nmi,acc}_*`` of their codes (``codes``), raw pixels and PCA (:mod:`gen_keras.eval.probes`).
    """
    from gen_keras.eval import samples
    from gen_keras.eval.likelihood import iwae_bounds
    from gen_keras.precision import float32_twin

    model = float32_twin(model)  # metrics never depend on the training precision
    out = Metrics()
    if is_translator(model):
        return _translation_metrics(model, run_config, seed, evaluator)
    if likelihood and is_vae_family(model):
        images, labels = _test_split(run_config, data)
        result = iwae_bounds(model, images, labels if type(model.config).conditional else None,
                             k=iwae_k, seed=seed, source=f"{run_config.data.dataset} test split")
        out.update(result.metrics("test"))
        out.notes["gen_keras.eval.likelihood_data"] = result.data_note
    if disentanglement and is_encoder(model) and is_factor_dataset(run_config.data.dataset):
        _add_disentanglement(out, model, run_config.data.dataset, seed, factor_samples, artifacts_dir)
    if representation and is_encoder(model):
        _add_representation(out, model, run_config, seed, data)
    if sample_metrics and hasattr(model, "generate"):
        from gen_keras.eval.evaluator import get_evaluator

        evaluator = evaluator or get_evaluator(run_config)
        out.update(samples.sample_quality(model, run_config, num_samples=num_samples, seed=seed,
                                          evaluator=evaluator))
        out.notes["gen_keras.eval.evaluator"] = (
            f"{evaluator.info['recipe']} trained on the {run_config.data.dataset} train split; "
            f"test accuracy {evaluator.test_accuracy:.4f}; sha256 {evaluator.info.get('sha256', '?')[:16]}")
    return out


def _add_disentanglement(out: Metrics, model, dataset: str, seed: int, num_samples: int,
                         artifacts_dir) -> None:
    from gen_keras.errors import ConfigError
    from gen_keras.eval.factor_eval import evaluate_disentanglement

    try:
        values, artifacts = evaluate_disentanglement(model, dataset, num_samples=num_samples, seed=seed,
                                                     artifacts_dir=artifacts_dir)
    except ConfigError as exc:  # e.g. trained at another image shape: the other metrics still count
        out.notes["gen_keras.eval.disentanglement"] = f"skipped: {exc}"
        return
    out.update(values)
    out.artifacts.update(artifacts)
    out.notes["gen_keras.eval.disentanglement"] = (
        f"codes of {num_samples} rendered {dataset} images (seed {seed}); posterior means for the "
        "VAE family, codes for autoencoders; MIG with max(20, most factor values) bins")


# The probes at the end of training: at most this many train / test images (a factor set's images
# are 4,096 pixels: its pixel probe on more would cost minutes).
PROBE_TRAIN_IMAGES, PROBE_TEST_IMAGES = 5000, 2000


def _add_representation(out: Metrics, model, run_config, seed: int, data=None) -> None:
    import numpy as np

    from gen_keras.data import load_split_arrays
    from gen_keras.eval.factor_eval import compiled_encoder
    from gen_keras.eval.probes import representation_report

    limit_train = min(x for x in (run_config.data.limit_train, PROBE_TRAIN_IMAGES) if x) or PROBE_TRAIN_IMAGES
    limit_test = min(x for x in (run_config.data.limit_test, PROBE_TEST_IMAGES) if x) or PROBE_TEST_IMAGES
    x_train, y_train = load_split_arrays(run_config, "train", limit=limit_train)
    x_test, y_test = _test_split(run_config, data, limit=limit_test)
    if len(np.unique(y_train)) < 2 or len(np.unique(y_test)) < 2:
        out.notes["gen_keras.eval.representation"] = "skipped: fewer than two classes in a split"
        return
    encode = compiled_encoder(model)
    codes_train = np.concatenate([encode(x_train[i:i + 500]) for i in range(0, len(x_train), 500)])
    codes_test = np.concatenate([encode(x_test[i:i + 500]) for i in range(0, len(x_test), 500)])
    baselines = cached_baselines(x_train, y_train, x_test, y_test, int(codes_train.shape[1]), seed)
    out.update(representation_report(codes_train, y_train, codes_test, y_test, x_train, x_test,
                                     seed=seed, baselines=baselines))
    out.notes["gen_keras.eval.representation"] = (
        f"codes (posterior means for the VAE family) of {len(x_train)} train / {len(x_test)} test "
        f"{run_config.data.dataset} images; logistic-regression probes on all and on 100 / 1,000 "
        "balanced labels, k-means NMI / cluster accuracy; beside raw pixels and PCA of the same width")


def _translation_metrics(model, run_config, seed: int, evaluator) -> Metrics:
    from gen_keras.eval.translation import translation_metrics

    values = translation_metrics(model, run_config, seed=seed, evaluator=evaluator)
    if "segmenter_test_pixel_accuracy" in values:
        judge = f"scene segmenter test pixel accuracy {values['segmenter_test_pixel_accuracy']:.4f}"
    else:
        judge = f"digit evaluator test accuracy {values['evaluator_test_accuracy']:.4f}"
    note = f"translation metrics of {run_config.data.dataset} (gen_keras.eval.translation); {judge}"
    return Metrics(values, notes={"gen_keras.eval.translation": note})


def gate_score(model, run_config, metric: str, num_samples: int, seed: int) -> float:
    """ONE number, LOWER IS BETTER, for the retraining quality gate.

    - ``"nll"`` (VAE family): the IWAE negative log-likelihood in nats (k = ``GATE_IWAE_K``
      importance samples) over the first ``num_samples`` test images, binarized with ``seed``.
    - ``"fid"`` / ``"kid"`` (any generator): FID or KID (mean) of ``num_samples`` generated images
      against as many test images, under the cached evaluator, latent codes drawn with ``seed``.

    Two models compare only at the same (metric, num_samples, seed) and the same test split.
    """
    from gen_keras.eval import samples
    from gen_keras.eval.likelihood import iwae_bounds
    from gen_keras.precision import float32_twin

    model = float32_twin(model)
    if is_translator(model):
        raise ValueError(f"{model.config.kind!r} translates images: the retraining gate scores "
                         f"generators ({list(GATE_METRICS)}); translation models have no gate metric yet")
    if metric not in GATE_METRICS:
        raise ValueError(f"gate metric {metric!r} is not one of {list(GATE_METRICS)}")
    if num_samples < 1:
        raise ValueError(f"num_samples={num_samples} must be >= 1")
    if metric == "nll":
        if not is_vae_family(model):
            raise ValueError(f"gate metric 'nll' needs a VAE-family model; {model.config.kind!r} "
                             "has no likelihood — use 'fid' or 'kid'")
        images, labels = _test_split(run_config)
        images, labels = images[:num_samples], labels[:num_samples]
        return iwae_bounds(model, images, labels if type(model.config).conditional else None,
                           k=GATE_IWAE_K, seed=seed).nll
    quality = samples.sample_quality(model, run_config, num_samples=num_samples, seed=seed)
    (name,) = [k for k in quality if re.fullmatch(rf"{metric}_\d+", k)]
    return float(quality[name])


def _test_split(run_config, data=None, limit: int | None = None):
    """The test split as numpy ``(images, labels)``, at most ``limit`` (default
    ``data.limit_test``): from the run's own test pipeline ``data`` when given (the same
    examples, prepared the same way), else read with :func:`gen_keras.data.load_split_arrays`."""
    import numpy as np

    from gen_keras.data import load_split_arrays

    limit = run_config.data.limit_test if limit is None else limit
    if data is None:
        return load_split_arrays(run_config, "test", limit=limit)
    test = data.test.unbatch()
    if limit:
        test = test.take(limit)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in test.batch(1000)))
    return np.concatenate(images), np.concatenate(labels).astype(np.int32)


__all__ = [
    "END_OF_TRAINING_FACTOR_SAMPLES",
    "END_OF_TRAINING_IWAE_K",
    "EVALUATOR_VERSION",
    "GATE_IWAE_K",
    "EvalTarget",
    "Metrics",
    "evaluate_model",
    "gate_score",
    "is_encoder",
    "is_translator",
    "is_vae_family",
    "load_for_eval",
]


_BASELINE_KEY = re.compile(r"^(probe_linear|probe_\d+_labels|kmeans_nmi|kmeans_acc)_(pixels|pca)$")


def cached_baselines(x_train, y_train, x_test, y_test, width: int, seed: int) -> dict[str, float]:
    """The pixel and PCA probes (:func:`gen_keras.eval.probes.baseline_report`) of these arrays,
    computed once and kept in ``<cache>/probe_baselines/<sha256>.json``, the key a digest of the
    arrays (dtype, shape, bytes), ``width``, ``seed`` and the probe settings: every run on the same
    data and limits shares them (on 64x64 images the pixel probes cost tens of seconds; the codes'
    own probes are cheap). A file that is not a table of such figures is computed again."""
    import hashlib
    import json

    import numpy as np

    from gen_keras.eval.probes import FEW_LABEL_DRAWS, FEW_LABELS, baseline_report
    from gen_keras.files import atomic_write_text, cache_dir

    digest = hashlib.sha256(json.dumps(["probe-baselines-1", int(width), int(seed), list(FEW_LABELS),
                                        FEW_LABEL_DRAWS]).encode())
    for array in (x_train, y_train, x_test, y_test):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    path = cache_dir("probe_baselines", f"{digest.hexdigest()}.json")
    try:
        kept = json.loads(path.read_text())
        if (isinstance(kept, dict) and {"probe_linear_pixels", "probe_linear_pca"} <= set(kept)
                and all(isinstance(k, str) and _BASELINE_KEY.match(k) and isinstance(v, float)
                        and 0.0 <= v <= 1.0 for k, v in kept.items())):
            return kept
    except (OSError, ValueError):
        pass
    figures = baseline_report(y_train, y_test, x_train, x_test, width, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(figures))
    return figures
