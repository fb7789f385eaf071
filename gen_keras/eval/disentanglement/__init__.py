"""Disentanglement metrics: how well a representation separates known generative factors, one
module per metric family, as disentanglement_lib lays them out.

Every metric takes codes ``[N, L]`` (a representation of N images: posterior means for the VAE
family, codes for autoencoders) and the ground-truth factor indices ``[N, K]`` of those images —
or, for the two intervention-based scores, a ground-truth sampler and a representation
function. Scores are in [0, 1], higher is better:

- :mod:`.mig` — the Mutual Information Gap (Chen et al. 2018), from the binned estimator of
  :mod:`.mutual_info`;
- :mod:`.dci` — disentanglement, completeness, informativeness (Eastwood & Williams 2018);
- :mod:`.sap` — Separated Attribute Predictability (Kumar et al. 2018);
- :mod:`.factorvae` — the FactorVAE score (Kim & Mnih 2018), and :mod:`.betavae` — the beta-VAE
  score (Higgins et al. 2017), both by intervention on a ground-truth sampler
  (:mod:`.interventions`);
- :mod:`.heatmap` — the factor-by-code mutual information drawn as a picture.

:func:`disentanglement_metrics` runs all of them on a factor data set. Every name is importable
from this package (``from gen_keras.eval import disentanglement as dm; dm.dci(...)``). All
randomness comes from ``seed``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_keras.eval.disentanglement.betavae import betavae_score
from gen_keras.eval.disentanglement.dci import dci, dci_importance, disentanglement_completeness
from gen_keras.eval.disentanglement.factorvae import factorvae_score
from gen_keras.eval.disentanglement.heatmap import mi_heatmap, mi_heatmap_png
from gen_keras.eval.disentanglement.interventions import Represent, _codes_of
from gen_keras.eval.disentanglement.mig import mig_from_mi, mutual_information_gap
from gen_keras.eval.disentanglement.mutual_info import (
    default_num_bins,
    discretize,
    entropy,
    mutual_information,
    mutual_information_matrix,
    normalized_mi,
)
from gen_keras.eval.disentanglement.sap import sap_from_matrix, sap_matrix, sap_score


def disentanglement_metrics(represent: Represent, dataset: str, *, value_range=(0.0, 1.0),
                            num_samples: int = 5000, seed: int = 0, batch_size: int = 1000,
                            heatmap_path: str | Path | None = None) -> dict[str, float]:
    """Every metric above for a representation of a factor data set (``dsprites``,
    ``shapes3d``, ...): ``mig``, ``dci_*``, ``sap``, ``factorvae_score``, ``betavae_score``.
    Codes of ``num_samples`` images of uniformly drawn factor combinations, rendered by the
    set's ground-truth sampler in ``value_range``; the set's categorical factors are scored as
    such by SAP. With ``heatmap_path``, also writes the mutual-information heat map there.
    A data set without factors is a :class:`~gen_keras.errors.ConfigError` naming it."""
    from gen_keras.data import factor_sampler

    sampler = factor_sampler(dataset, value_range)
    rng = np.random.default_rng(seed)
    factors = sampler.sample_factors(num_samples, rng)
    codes = np.concatenate([_codes_of(sampler, represent, factors[i:i + batch_size])
                            for i in range(0, num_samples, batch_size)])
    discrete = [f.discrete for f in sampler.factor_set.factors]
    out = {"mig": mutual_information_gap(codes, factors), **dci(codes, factors, seed=seed),
           "sap": sap_score(codes, factors, discrete, seed=seed),
           "factorvae_score": factorvae_score(sampler, represent, seed=seed),
           "betavae_score": betavae_score(sampler, represent, seed=seed)}
    if heatmap_path is not None:
        mi_heatmap_png(codes, factors, sampler.factor_names, heatmap_path)
    return out


__all__ = [
    "betavae_score",
    "dci",
    "dci_importance",
    "default_num_bins",
    "discretize",
    "disentanglement_completeness",
    "disentanglement_metrics",
    "entropy",
    "factorvae_score",
    "mi_heatmap",
    "mi_heatmap_png",
    "mig_from_mi",
    "mutual_information",
    "mutual_information_gap",
    "mutual_information_matrix",
    "normalized_mi",
    "sap_from_matrix",
    "sap_matrix",
    "sap_score",
]
