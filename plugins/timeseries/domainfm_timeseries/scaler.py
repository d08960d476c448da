"""The per-column standard scaler fitted on the training split, and its record in a data spec.

The papers' protocol scores forecasts on data standardised with the training split's mean and
(population) std. The fitted values travel with a trained model as
``DataSpec.normalization = {"mean": [...], "std": [...]}`` (one value per input column, in
``DataSpec.inputs`` order), so a predictor scales new files exactly as training did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from domainfm.errors import DataError


@dataclass
class StandardScaler:
    """Per-channel mean and (population) std; a constant channel gets std 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, arrays: list[np.ndarray]) -> StandardScaler:
        data = np.concatenate(arrays, axis=0).astype(np.float64)
        std = data.std(axis=0)
        return cls(data.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray, channels: slice | list[int] = slice(None)) -> np.ndarray:
        return ((values - self.mean[channels]) / self.std[channels]).astype(np.float32)

    def inverse(self, values: np.ndarray, channels: slice | list[int] = slice(None)) -> np.ndarray:
        return values * self.std[channels] + self.mean[channels]

    def to_spec(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_spec(cls, normalization: Mapping[str, Any], channels: int) -> StandardScaler | None:
        """The scaler a data specification records; None when the model was trained unscaled."""
        if not normalization:
            return None
        mean, std = (np.asarray(normalization.get(k, ()), dtype=np.float64) for k in ("mean", "std"))
        if mean.shape != (channels,) or std.shape != (channels,) or (std <= 0).any():
            raise DataError(f"the model's data specification holds a scaler for {mean.size} "
                            f"column(s), its inputs are {channels}: export the model again")
        return cls(mean, std)
