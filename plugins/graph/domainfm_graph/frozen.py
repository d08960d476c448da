"""GCC's frozen protocol: embeddings from a fixed encoder, then a linear model, 10-fold CV.

Each item's embedding is the mean of its two views' embeddings. Nodes are scored by one-vs-rest
logistic regression (C=1000) and micro-F1; graphs by an SVM (C=1e5) and accuracy; both with
stratified 10-fold cross-validation from scikit-learn, reported as mean and standard deviation
over folds. As in the reference, the classifiers see the raw embeddings (``standardize=True``
z-scores them per fold first).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from domainfm.errors import DataError

from domainfm_graph.data.instances import passthrough


@torch.no_grad()
def embed(encoder: nn.Module, dataset: Dataset, *, batch_size: int = 128,
          device: str | torch.device = "cpu") -> np.ndarray:
    """``(len(dataset), embed_dim)`` embeddings, the mean over the views each batch holds."""
    was_training = encoder.training
    encoder.eval()
    out = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=passthrough):
        views = [batch["graph"]] + ([batch["graph_k"]] if "graph_k" in batch else [])
        emb = sum(encoder({"graph": v.to(device)})["embedding"] for v in views) / len(views)
        out.append(emb.float().cpu().numpy())
    encoder.train(was_training)
    return np.concatenate(out)


def cross_validate(features: np.ndarray, labels: np.ndarray, *,
                   classifier: Literal["logreg", "svm"] = "logreg", folds: int = 10,
                   seed: int = 0, C: float | None = None,
                   standardize: bool = False) -> dict[str, Any]:
    """Stratified k-fold scores of a linear classifier on fixed features.

    Returns ``micro_f1``/``accuracy`` (mean over folds), ``*_std`` and the per-fold values.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise DataError(f"{len(features)} embeddings but {len(labels)} labels")
    counts = np.bincount(labels)
    if counts[counts > 0].min() < folds:
        raise DataError(f"{folds}-fold cross-validation needs at least {folds} items per "
                            f"class; class sizes are {counts.tolist()}")
    f1s, accs = [], []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        if classifier == "logreg":
            model = OneVsRestClassifier(LogisticRegression(C=C or 1000.0, max_iter=5000))
        else:
            model = SVC(C=C or 1e5)
        if standardize:
            model = make_pipeline(StandardScaler(), model)
        model.fit(features[train], labels[train])
        predicted = model.predict(features[test])
        f1s.append(f1_score(labels[test], predicted, average="micro"))
        accs.append(accuracy_score(labels[test], predicted))
    return {"micro_f1": float(np.mean(f1s)), "micro_f1_std": float(np.std(f1s)),
            "accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "folds": {"micro_f1": [float(v) for v in f1s], "accuracy": [float(v) for v in accs]}}
