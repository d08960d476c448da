"""Transferability estimates: how well frozen features suit a target, without fine-tuning.

* :func:`logme` is LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning", ICML 2021): the log marginal evidence of a Bayesian linear model from the
  features to each target column, maximised over its prior and noise precisions by the paper's
  fixed-point iteration on one SVD of the features, averaged over columns and divided by the
  number of samples. Classification targets are one-hot columns. Higher is better.
* :func:`probe_score` fits a ridge-regularised linear probe on one part of the samples and scores
  it on the held-out rest: accuracy for classification, R^2 for regression.

Dense targets (a mask or a forecast per sample) are first summarised per sample by
:func:`summarise_targets`: class proportions for integer maps, values averaged down to at most
``max_dims`` columns for real-valued ones; the features are the encoder's pooled embedding.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def summarise_targets(targets: list[torch.Tensor], num_classes: int | None,
                      ignore_index: int | None = None, max_dims: int = 64) -> tuple[np.ndarray, bool]:
    """``(per-sample targets, is_classification)`` from a list of batch targets.

    ``(B,)`` integers are class labels; integer maps ``(B, ...)`` become class proportions (the
    ``ignore_index`` excluded); real values ``(B, ...)`` are flattened and averaged down to at
    most ``max_dims`` columns (NaN, marking no data, ignored).
    """
    target = torch.cat([t.reshape(t.shape[0], -1) if t.ndim > 1 else t for t in targets])
    integer = not target.is_floating_point()
    if integer and target.ndim == 1:
        return target.numpy().astype(np.int64), True
    if integer:
        classes = num_classes or int(target.max()) + 1
        valid = (target >= 0) & (target < classes)
        if ignore_index is not None:
            valid &= target != ignore_index
        onehot = torch.nn.functional.one_hot(target.clamp(0, classes - 1), classes).float()
        onehot = onehot * valid[..., None]
        share = onehot.sum(1) / valid.sum(1, keepdim=True).clamp_min(1)
        return share.numpy().astype(np.float64), False
    values = target.reshape(target.shape[0], -1).double()
    chunks = np.array_split(np.arange(values.shape[1]), min(max_dims, values.shape[1]))
    columns = [torch.nanmean(values[:, c], dim=1) for c in chunks]
    out = torch.stack(columns, 1).numpy()
    return np.nan_to_num(out, nan=np.nanmean(out) if np.isfinite(out).any() else 0.0), False


def _columns(y: np.ndarray, classification: bool) -> np.ndarray:
    if classification:
        classes = np.unique(y)
        return (y[:, None] == classes[None, :]).astype(np.float64)
    return y.reshape(len(y), -1).astype(np.float64)


def logme(features: np.ndarray, y: np.ndarray, classification: bool, iterations: int = 50) -> float:
    """LogME evidence per sample of ``features`` (n, d) for targets ``y``; higher is better."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    k = len(sigma)
    scores = []
    for column in _columns(y, classification).T:
        x2 = (u.T @ column) ** 2
        residual_outside = max(float(column @ column - x2.sum()), 0.0)  # beyond the span of f
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
            res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + residual_outside
            new_alpha, new_beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            done = abs(new_alpha / new_beta - t) / t < 1e-5
            alpha, beta = new_alpha, new_beta
            if done:
                break
        t = alpha / beta
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + residual_outside
        logdet = float(np.log(alpha + beta * sigma).sum()) + (d - k) * math.log(alpha)
        evidence = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                    - beta / 2 * res2 - alpha / 2 * m2 - logdet / 2)
        scores.append(evidence / n)
    return float(np.mean(scores))


def probe_score(features: np.ndarray, y: np.ndarray, classification: bool,
                held_out: float = 0.25, seed: int = 0, ridge: float = 1e-2) -> float:
    """Held-out score of a linear probe: accuracy (classification) or R^2 (regression).

    The probe is ridge regression on standardised features (to one-hot columns for
    classification, taking the arg-max), fitted in closed form on a seeded split.
    """
    n = len(features)
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, min(n - 1, int(round(n * (1 - held_out)))))
    train, test = order[:cut], order[cut:]
    f = np.asarray(features, dtype=np.float64)
    mean, std = f[train].mean(0), f[train].std(0) + 1e-8
    f = np.concatenate([(f - mean) / std, np.ones((n, 1))], axis=1)
    columns = _columns(y, classification)
    a = f[train]
    w = np.linalg.solve(a.T @ a + ridge * len(train) * np.eye(a.shape[1]), a.T @ columns[train])
    predicted = f[test] @ w
    if classification:
        classes = np.unique(y)
        return float((classes[predicted.argmax(1)] == y[test]).mean())
    target = columns[test]
    total = ((target - columns[train].mean(0)) ** 2).sum()
    return float(1 - ((target - predicted) ** 2).sum() / max(total, 1e-12))


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two score lists (ties counted in neither direction)."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da == db:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else 0.0


__all__ = ["kendall_tau", "logme", "probe_score", "summarise_targets"]
