"""The supervised datamodules' shared part: honest k-fold splits, loaders and the data spec.

GCC scores a labelled task by stratified k-fold cross-validation. One run serves one fold:
``fold`` is the test split; from the other folds a stratified, seeded ``val_fraction`` is held
out as the validation split (it picks checkpoints), and the rest trains. So the test split
never selects anything and is disjoint from both. The frozen protocol
(:mod:`domainfm_graph.frozen`) is separate: it embeds every labelled item
(:meth:`SupervisedDataModule.all_items`) and cross-validates a linear model itself.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader, Dataset

from domainfm.errors import ConfigError, DataError
from domainfm.records import Range
from domainfm.spec import DataSpec

from domainfm_graph.data.instances import loader
from domainfm_graph.sampler import GraphCollection

INPUTS = ("eigenvectors", "degree", "seed")  # what the encoder reads of every node

RestartProb = Annotated[float, Range(gt=0, le=1)]  # 0 would never end a walk
Folds = Annotated[int, Range(ge=2)]
ValFraction = Annotated[float, Range(gt=0, lt=1)]


def sampler_task(sampling: dict[str, Any], level: str) -> dict[str, Any]:
    """The data-specification facts a predictor needs to sample instances as training did."""
    keys = ("rw_hops", "restart_prob", "pos_dim", "max_degree")
    return {"level": level, **{k: sampling[k] for k in keys}}


def honest_split(labels: np.ndarray, folds: int, fold: int, val_fraction: float, seed: int,
                 source: str) -> dict[str, np.ndarray]:
    """Positions of the train, val and test items: ``fold`` of a stratified k-fold is the test
    split, a stratified ``val_fraction`` of the other folds the validation split."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    counts = np.bincount(labels)
    if counts[counts > 0].min() < folds:
        raise DataError(f"{source}: a stratified {folds}-fold split needs every class to have at "
                        f"least {folds} labelled items; class sizes are {counts.tolist()}")
    rest, test = list(StratifiedKFold(folds, shuffle=True, random_state=seed)
                      .split(np.zeros(len(labels)), labels))[fold]
    classes = int((counts > 0).sum())
    n_val = max(classes, int(round(val_fraction * len(rest))))
    if len(rest) - n_val < classes:
        raise DataError(f"{source}: {len(rest)} items outside the test fold are too few for a "
                        f"stratified validation split of {n_val} and a training split with "
                        f"every one of the {classes} classes")
    try:
        train, val = train_test_split(rest, test_size=n_val, stratify=labels[rest],
                                      random_state=seed)
    except ValueError as exc:  # a class with a single item outside the test fold
        raise DataError(f"{source}: no stratified validation split: {exc}") from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


class SupervisedDataModule(pl.LightningDataModule):
    """Labelled items (nodes or graphs) split honestly; subclasses implement :meth:`load` and
    :meth:`dataset`, and set ``level``."""

    level = "node"

    def __init__(self, *, batch_size: int, folds: int, fold: int, val_fraction: float,
                 num_workers: int, seed: int, rw_hops: int, restart_prob: float, pos_dim: int,
                 max_degree: int, eval_views: int = 1) -> None:
        super().__init__()
        if not 0 <= fold < folds:
            raise ConfigError(f"data.params.fold must be in [0, {folds}), got {fold}")
        self.batch_size, self.folds, self.fold, self.num_workers = batch_size, folds, fold, num_workers
        self.val_fraction, self.eval_views = val_fraction, eval_views
        self.sampling = {"seed": seed, "rw_hops": rw_hops, "restart_prob": restart_prob,
                         "pos_dim": pos_dim, "max_degree": max_degree}
        self.ready = False
        # set by load(): the graphs, one label per item, class names, ids, where labels came from
        self.collection: GraphCollection
        self.labels: np.ndarray
        self.classes: list[str]
        self.keys: np.ndarray
        self.source: str

    def load(self) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def dataset(self, positions: np.ndarray, views: int = 1) -> Dataset:  # pragma: no cover
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        """Read and check the graph(s) and labels, then split; nothing is read twice."""
        if not self.ready:
            self.load()
            if len(self.classes) < 2:
                raise DataError(f"{self.source}: the labels name {len(self.classes)} class "
                                f"({self.classes}); classification needs at least 2")
            self.parts = honest_split(self.labels, self.folds, self.fold, self.val_fraction,
                                      self.sampling["seed"], self.source)
            self.ready = True

    # kept for the protocols and scripts that name the train / test positions
    @property
    def train_idx(self) -> np.ndarray:
        return self.parts["train"]

    @property
    def val_idx(self) -> np.ndarray:
        return self.parts["val"]

    @property
    def test_idx(self) -> np.ndarray:
        return self.parts["test"]

    def data_spec(self) -> DataSpec:
        return DataSpec(inputs=INPUTS, num_classes=self.num_classes,
                        task={**sampler_task(self.sampling, self.level),
                              "class_names": list(self.classes), "label_source": self.source})

    def split_keys(self, split: str) -> list[Hashable]:
        """The ids (node names, or graph numbers) of the items in ``split``."""
        return [k.item() if hasattr(k, "item") else k for k in self.keys[self.parts[split]]]

    def train_dataloader(self) -> DataLoader:
        return loader(self.dataset(self.parts["train"]), self.batch_size, True, self.num_workers)

    # validation and test items come as ``eval_views`` views, whose embeddings the encoder
    # averages (for a linear head, the mean of the views' logits)
    def val_dataloader(self) -> DataLoader:
        return loader(self.dataset(self.parts["val"], self.eval_views), self.batch_size, False,
                      self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return loader(self.dataset(self.parts["test"], self.eval_views), self.batch_size, False,
                      self.num_workers)

    def all_items(self, views: int = 1) -> Dataset:
        """Every labelled item (``views`` views each), to embed them all."""
        return self.dataset(np.arange(len(self.labels)), views)
