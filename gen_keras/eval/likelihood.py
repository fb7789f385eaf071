"""Likelihood bounds for the VAE family: the test ELBO and the importance-weighted estimate of
log p(x) (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders", eq. 8).

For one example x and k draws z_i ~ q(z|x), the log importance weights are

    log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x)

and the two estimates computed from the SAME draws are

    ELBO_k = (1/k) sum_i log w_i                       (a k-sample Monte Carlo ELBO)
    IWAE_k = log (1/k) sum_i w_i = logsumexp(log w) - log k

IWAE_k >= ELBO_k holds for every example by Jensen's inequality (up to float error), and
E[IWAE_k] rises monotonically in k towards log p(x) (Burda et al., theorem 1). The negative of
IWAE_k with k = 5000 is the "test NLL" of the published MNIST tables.

Memory: the decoder sees at most ``decode_batch`` latent codes at once; the draws of one batch of
examples are processed chunk by chunk, so k = 5000 needs no more memory than k = 50.

Bernoulli decoders are evaluated on a seeded stochastic binarization of the test images
(x_bin = 1[u < x], u ~ U[0, 1)), the convention behind the published MNIST numbers
(Salakhutdinov & Murray 2008); Gaussian decoders on the images as they are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOG2 = math.log(2.0)


def is_vae_family(model) -> bool:
    """Has an inference network and a decoder likelihood: the IWAE bound applies."""
    return all(hasattr(model, name) for name in ("encode", "loss_terms", "decoder_output",
                                                 "log_likelihood"))


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """A seeded stochastic binarization 1[u < x] of images in [0, 1] (same seed, same bits)."""
    images = np.asarray(images, np.float32)
    if images.min() < 0.0 or images.max() > 1.0:
        raise ValueError("binarize expects images in [0, 1] (the Bernoulli decoder's range), got "
                         f"[{images.min():.3g}, {images.max():.3g}]")
    u = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
    return (u < images).astype(np.float32)


def bits_per_dim(nats: float | np.ndarray, image_shape) -> float | np.ndarray:
    """nats per image → bits per dimension: nats / (D ln 2), D = H * W * C."""
    return nats / (int(np.prod(image_shape)) * LOG2)


def logmeanexp(log_w: np.ndarray, axis: int = -1) -> np.ndarray:
    """log (1/k) sum exp(log_w) along ``axis``, stable: the max is taken out before exp."""
    log_w = np.asarray(log_w, np.float64)
    m = np.max(log_w, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.mean(np.exp(log_w - m), axis=axis)) + np.squeeze(m, axis)
    return out


class _WeightFn:
    """A compiled ``(x, labels, eps [c, B, L]) -> log w [c, B]`` for one model."""

    def __init__(self, model):
        import tensorflow as tf

        from gen_keras import losses

        self.model = model
        has_labels = bool(getattr(model.config, "num_classes", 0)) and type(model.config).conditional

        def encode(x, labels):
            mean, log_var = model.encode(x, labels if has_labels else None, training=False)
            return tf.cast(mean, tf.float32), tf.cast(log_var, tf.float32)

        def weights(x, labels, mean, log_var, eps):
            c, b = tf.shape(eps)[0], tf.shape(eps)[1]
            z = mean[None] + tf.exp(0.5 * log_var)[None] * eps  # [c, B, L]
            log_q = losses.log_normal_diag(z, mean[None], log_var[None])  # [c, B]
            log_prior = losses.log_standard_normal(z)
            flat_z = tf.reshape(z, [c * b, -1])
            flat_x = tf.reshape(tf.tile(x[None], [c, 1, 1, 1, 1]), tf.concat([[c * b], tf.shape(x)[1:]], 0))
            flat_y = tf.reshape(tf.tile(labels[None], [c, 1]), [-1]) if has_labels else None
            out = model.decoder_output(flat_z, flat_y, training=False)
            log_px = tf.reshape(model.log_likelihood(flat_x, out), [c, b])
            return log_px + log_prior - log_q, log_px

        self.encode = tf.function(encode, reduce_retracing=True)
        self.weights = tf.function(weights, reduce_retracing=True)


def log_importance_weights(model, x: np.ndarray, labels: np.ndarray | None = None, *, k: int,
                           seed: int = 0, decode_batch: int = 2000,
                           return_kl: bool = False):
    """``[B, k]`` float64 log importance weights log p(x, z_i) - log q(z_i | x) for one batch.

    The draws come from a stateless RNG keyed by ``seed`` and the chunk index, so the same call
    gives the same weights. With ``return_kl``, also the analytic KL(q(z|x) || N(0, I)) ``[B]``.
    """
    import tensorflow as tf

    from gen_keras import losses

    fn = _weight_fn(model)
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    b = int(x.shape[0])
    y = tf.convert_to_tensor(np.zeros(b, np.int32) if labels is None else np.asarray(labels, np.int32))
    mean, log_var = fn.encode(x, y)
    latent = int(mean.shape[-1])
    chunk = max(1, min(k, decode_batch // max(b, 1)))
    out = []
    for i, start in enumerate(range(0, k, chunk)):
        c = min(chunk, k - start)
        eps = tf.random.stateless_normal([c, b, latent], seed=[seed, i])
        log_w, _ = fn.weights(x, y, mean, log_var, eps)
        out.append(log_w.numpy().astype(np.float64))
    log_w = np.concatenate(out, axis=0).T  # [B, k]
    if return_kl:
        return log_w, losses.kl_divergence(mean, log_var).numpy().astype(np.float64)
    return log_w


def _weight_fn(model) -> _WeightFn:
    # One compiled function per model object (tf.function retraces per input shape only).
    fn = getattr(model, "_gen_keras_iwae_fn", None)
    if fn is None:
        fn = _WeightFn(model)
        try:
            object.__setattr__(model, "_gen_keras_iwae_fn", fn)
        except Exception:
            pass
    return fn


@dataclass
class LikelihoodResult:
    """Per-example bounds (nats) on one evaluation set, and how that set was made."""
    elbo: np.ndarray  # [N] ELBO_k (same draws as the IWAE estimate)
    iwae: np.ndarray  # [N] IWAE_k, the estimate of log p(x)
    k: int
    image_shape: tuple
    data_note: str

    @property
    def nll(self) -> float:
        """-mean IWAE_k: the test negative log-likelihood in nats."""
        return float(-np.mean(self.iwae))

    @property
    def negative_elbo(self) -> float:
        return float(-np.mean(self.elbo))

    def metrics(self, prefix: str = "test") -> dict[str, float]:
        nll, neg_elbo = self.nll, self.negative_elbo
        return {
            f"{prefix}_neg_elbo_nats": neg_elbo,
            f"{prefix}_neg_elbo_bpd": float(bits_per_dim(neg_elbo, self.image_shape)),
            f"{prefix}_nll_k{self.k}_nats": nll,
            f"{prefix}_nll_k{self.k}_bpd": float(bits_per_dim(nll, self.image_shape)),
        }


def evaluation_images(model, images: np.ndarray, seed: int, source: str = "test split"):
    """The images the likelihood is measured on, and a note saying how they were made."""
    if getattr(model.config, "likelihood", "bernoulli") == "bernoulli":
        return binarize(images, seed), (f"{source}, stochastically binarized (x = 1[u < pixel], "
                                        f"numpy default_rng seed {seed})")
    return np.asarray(images, np.float32), f"{source}, continuous pixels (Gaussian decoder density)"


def iwae_bounds(model, images: np.ndarray, labels: np.ndarray | None = None, *, k: int = 5000,
                seed: int = 0, batch_size: int | None = None, decode_batch: int = 2000,
                binarize_seed: int | None = None, source: str = "test split",
                progress=None) -> LikelihoodResult:
    """ELBO_k and IWAE_k for every image (see the module docstring).

    ``images`` are in the model's range ([0, 1] for the VAE family); Bernoulli decoders see the
    seeded binarization (``binarize_seed``, default ``seed``). Examples go through in batches of
    ``batch_size`` (default: so that one chunk of draws holds about ``decode_batch`` codes).
    """
    if k < 1:
        raise ValueError(f"k={k}: the number of importance samples must be >= 1")
    if not is_vae_family(model):
        raise TypeError(f"{type(model).__name__} has no encoder/decoder likelihood; the IWAE bound "
                        "needs a VAE-family model")
    x, note = evaluation_images(model, images, seed if binarize_seed is None else binarize_seed, source)
    n = len(x)
    if batch_size is None:
        batch_size = max(1, min(n, decode_batch // min(k, 10)))
    elbo, iwae = np.empty(n), np.empty(n)
    for bi, start in enumerate(range(0, n, batch_size)):
        sl = slice(start, min(n, start + batch_size))
        log_w = log_importance_weights(model, x[sl], None if labels is None else labels[sl], k=k,
                                       seed=seed * 100_003 + bi, decode_batch=decode_batch)
        elbo[sl] = log_w.mean(axis=1)
        iwae[sl] = logmeanexp(log_w, axis=1)
        if progress is not None:
            progress(sl.stop, n)
    return LikelihoodResult(elbo, iwae, k, tuple(model.image_shape),
                            f"{note}; ELBO and IWAE from the same {k} draws per example")
