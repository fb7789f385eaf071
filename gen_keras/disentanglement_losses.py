"""The objectives of the disentangling VAEs as pure functions of tensors (beta-TCVAE, FactorVAE).

Conventions as in :mod:`gen_keras.losses`: codes are ``[batch, latent]``; every function that
returns a per-example quantity returns ``[batch]`` in nats, and the caller reduces over the
(global) batch. Both estimators below look at the whole minibatch at once, so the batch a
function is given IS the sample the estimate is made from: under a distribution strategy each
replica estimates from its own share of the global batch.
"""
from __future__ import annotations

import math

import tensorflow as tf

from gen_keras.losses import LOG_2PI, discriminator_loss, log_normal_diag, log_standard_normal


# ----------------------------------------------------------------------------------------------
# beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in VAEs")
# ----------------------------------------------------------------------------------------------
def pairwise_log_density(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """``[M, M, L]``: entry ``[i, j, d] = log N(z_id; mean_jd, exp(log_var_jd))``, the density
    of sample i's code under example j's posterior, one latent dimension at a time."""
    z = tf.cast(z, tf.float32)[:, None, :]
    mean = tf.cast(mean, tf.float32)[None, :, :]
    log_var = tf.cast(log_var, tf.float32)[None, :, :]
    return -0.5 * (LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var))


def mws_log_densities(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor,
                      dataset_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Minibatch weighted sampling estimates of ``log q(z_i)`` and ``sum_d log q(z_id)``, per
    example i of a minibatch of M (Chen et al. 2018, sec. 4.1, eq. 5 and appendix C.1):

        log q(z_i)    ~= logsumexp_j  log q(z_i  | x_j)  - log(N M)
        log q(z_id)   ~= logsumexp_j  log q(z_id | x_j)  - log(N M)

    with ``z_i ~ q(z | x_i)``, the sum over j running over the whole minibatch (i included) and
    N the number of training examples (``dataset_size``): the aggregate posterior
    ``q(z) = 1/N sum_n q(z | x_n)`` seen through a minibatch, each member weighted 1/(N M)
    except the sample's own example. Returns ``(log_qz [M], log_prod_qzd [M])``.

    Worked example: M = 1, N = 1 gives back the posterior itself, ``log q(z|x)`` for both.
    """
    if int(dataset_size) < 1:
        raise ValueError(f"dataset_size={dataset_size}: the MWS estimator needs the number of "
                         "training examples N >= 1")
    pairs = pairwise_log_density(z, mean, log_var)  # [M, M, L]
    m = tf.cast(tf.shape(pairs)[0], tf.float32)
    log_nm = math.log(float(dataset_size)) + tf.math.log(m)
    log_qz = tf.reduce_logsumexp(tf.reduce_sum(pairs, axis=2), axis=1) - log_nm
    log_prod_qzd = tf.reduce_sum(tf.reduce_logsumexp(pairs, axis=1) - log_nm, axis=1)
    return log_qz, log_prod_qzd


def mss_log_weights(batch: tf.Tensor, dataset_size: int) -> tf.Tensor:
    """``[B, B]`` log importance weights of minibatch stratified sampling (Chen et al. 2018,
    appendix C.2) for a minibatch of B examples out of N (``dataset_size``), K = B - 1 others per
    row: the sample's own example ``1/N``, one designated other (here the next, ``(i + 1) mod B``)
    ``(N - K) / (N K)``, each remaining other ``1/K``; each row sums to 1. Where MWS weighs every
    member ``1/(N B)``, MSS counts the other members as the rest of the data set and the own
    example as one in N. Worked example: B = 3, N = 10 gives rows of (0.1, 0.4, 0.5) in turn."""
    b = tf.shape(batch)[0]
    n = float(dataset_size)
    k = tf.cast(tf.maximum(b - 1, 1), tf.float32)
    own = tf.eye(b)
    designated = tf.roll(own, shift=1, axis=1) * (1.0 - own)
    rest = 1.0 - own - designated
    weights = own / n + designated * (n - k) / (n * k) + rest / k
    return tf.math.log(tf.maximum(weights, 1e-30))


def mss_log_densities(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor,
                      dataset_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Minibatch stratified sampling estimates of ``log q(z_i)`` and ``sum_d log q(z_id)`` (the
    same quantities as :func:`mws_log_densities`, weighted by :func:`mss_log_weights`):

        log q(z_i)  ~= logsumexp_j  (log w_ij + log q(z_i  | x_j))
        log q(z_id) ~= logsumexp_j  (log w_ij + log q(z_id | x_j))
    """
    if int(dataset_size) < 1:
        raise ValueError(f"dataset_size={dataset_size}: the MSS estimator needs the number of "
                         "training examples N >= 1")
    pairs = pairwise_log_density(z, mean, log_var)  # [M, M, L]
    log_w = mss_log_weights(z, dataset_size)
    log_qz = tf.reduce_logsumexp(tf.reduce_sum(pairs, axis=2) + log_w, axis=1)
    log_prod_qzd = tf.reduce_sum(tf.reduce_logsumexp(pairs + log_w[:, :, None], axis=1), axis=1)
    return log_qz, log_prod_qzd


ESTIMATORS = {"mws": mws_log_densities, "mss": mss_log_densities}


def tc_decomposition(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor,
                     dataset_size: int, estimator: str = "mws") -> dict[str, tf.Tensor]:
    """The three parts of the ELBO's KL term (Chen et al. 2018, eq. 2), per example:

    - ``mi``     index-code mutual information  ``log q(z|x) - log q(z)``
    - ``tc``     total correlation              ``log q(z) - sum_d log q(z_d)``
    - ``dim_kl`` dimension-wise KL              ``sum_d log q(z_d) - log p(z)``

    with ``p = N(0, I)``, ``z ~ q(z|x)`` one sample per example and ``log q(z)``,
    ``sum_d log q(z_d)`` the :func:`mws_log_densities` (``estimator="mws"``) or
    :func:`mss_log_densities` (``"mss"``) estimates. Their batch means estimate
    ``I_q(z; n)``, ``KL(q(z) || prod_d q(z_d))`` and ``sum_d KL(q(z_d) || p(z_d))``, and the three
    add up exactly to the single-sample KL estimate ``log q(z|x) - log p(z)``.
    """
    log_qz_x = log_normal_diag(z, mean, log_var)
    log_pz = log_standard_normal(z)
    log_qz, log_prod_qzd = ESTIMATORS[estimator](z, mean, log_var, dataset_size)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_prod_qzd, "dim_kl": log_prod_qzd - log_pz}


def beta_tcvae_penalty(terms: dict[str, tf.Tensor], alpha: float, beta: float,
                       gamma: float) -> tf.Tensor:
    """``alpha * mi + beta * tc + gamma * dim_kl`` per example: what beta-TCVAE adds to the
    reconstruction loss (Chen et al. 2018, eq. 4). ``alpha = beta = gamma = 1`` is the
    (sampled) KL of the plain ELBO; the paper's beta-TCVAE keeps alpha = gamma = 1."""
    return alpha * terms["mi"] + beta * terms["tc"] + gamma * terms["dim_kl"]


def capacity_tc_penalty(tc: tf.Tensor, kl: tf.Tensor, beta: float, capacity,
                        capacity_weight: float = 1.0) -> tf.Tensor:
    """``(beta - 1) * tc + capacity_weight * |kl - capacity|`` per example: beta-TCVAE's extra
    total-correlation weight on top of the capacity-controlled KL of Burgess et al. 2018
    ("Understanding disentangling in beta-VAE", eq. 8). beta-TCVAE with alpha = gamma = 1 is
    ``KL + (beta - 1) * TC``; capacity control replaces that KL by ``gamma_C * |KL - C|``, so the
    code may keep C nats while its dimensions are pushed towards independence.

    >>> capacity_tc_penalty([2.0], [10.0], beta=6.0, capacity=4.0, capacity_weight=3.0)  # 5*2 + 3*6 = [28]
    """
    tc = tf.cast(tf.convert_to_tensor(tc), tf.float32)
    kl = tf.cast(tf.convert_to_tensor(kl), tf.float32)
    return (beta - 1.0) * tc + capacity_weight * tf.abs(kl - tf.cast(capacity, tf.float32))


# ----------------------------------------------------------------------------------------------
# FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising")
# ----------------------------------------------------------------------------------------------
def permute_dims(z: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Each latent dimension shuffled independently across the batch (Kim & Mnih 2018,
    Algorithm 1): column d of the result is column d of ``z`` in the order
    ``argsort(noise[:, d])``. With ``noise`` i.i.d. uniform, every column gets its own uniformly
    random permutation, so the rows are samples of ``prod_d q(z_d)`` rather than of ``q(z)``.

    ``noise`` has the shape of ``z``; the function is deterministic given it.

    >>> permute_dims([[1., 10.], [2., 20.]], [[0.9, 0.1], [0.2, 0.5]])  # [[2, 10], [1, 20]]
    """
    z = tf.convert_to_tensor(z)
    order = tf.argsort(tf.convert_to_tensor(noise), axis=0)  # [B, L]: row order per column
    return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))


def factorvae_total_correlation(logits: tf.Tensor) -> tf.Tensor:
    """The density-ratio estimate of the total correlation, per example (Kim & Mnih 2018,
    eq. 3): ``TC(z) ~= E_q(z)[log D(z) / (1 - D(z))]``, where D(z) is the discriminator's
    probability that z comes from q(z) rather than from prod_d q(z_d). With D = sigmoid(l),
    ``log D / (1 - D) = l``: the logit itself (the paper's two-output softmax gives l0 - l1).

    >>> factorvae_total_correlation([0.0, 2.0])  # D = 1/2 and 0.88: [0, 2]
    """
    return tf.reshape(tf.cast(tf.convert_to_tensor(logits), tf.float32), [-1])


def factorvae_discriminator_loss(joint_logits: tf.Tensor, permuted_logits: tf.Tensor) -> tf.Tensor:
    """The discriminator's cross-entropy (Kim & Mnih 2018, Algorithm 2): codes of the data,
    z ~ q(z), are class 1 and dimension-wise permuted codes are class 0, so D minimizes
    ``-log D(z) - log(1 - D(z_perm)) = softplus(-l_joint) + softplus(l_perm)``, per pair.

    >>> factorvae_discriminator_loss([0.0], [0.0])  # 2 log 2 = 1.3863
    """
    return discriminator_loss(joint_logits, permuted_logits)
