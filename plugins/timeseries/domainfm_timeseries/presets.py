"""TTM hyper-parameters and the named sizes of ``timeseries.ttm``.

Kept free of heavy imports (no torch, numpy or pandas): listing plugins reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from domainfm.errors import ConfigError
from domainfm.records import Range

Mode = Literal["common_channel", "mix_channel"]
DropoutRate = Annotated[float, Range(ge=0, lt=1)]
Quantile = Annotated[float, Range(gt=0, lt=1)]

# granite's resolution vocabulary: the out-of-vocabulary token 0 plus 9 resolutions
# (frequency.RESOLUTION_TOKENS; a test checks they agree)
VOCAB_SIZE = 10
# quantiles of timeseries.quantile_forecast and of the quantile metrics when none are set: a
# metric left unset takes the head's value, so both sides default to this one list
DEFAULT_QUANTILES = [0.1, 0.5, 0.9]


@dataclass(frozen=True)
class TTMConfig:
    """Hyper-parameters of a TTM; field names are granite-tsfm's where one exists."""

    context_length: int = 512
    prediction_length: int = 96
    patch_length: int = 64
    patch_stride: int = 64
    d_model: int = 192
    num_layers: int = 2
    adaptive_patching_levels: int = 3
    expansion_factor: int = 2
    dropout: float = 0.2
    mode: Mode = "common_channel"
    num_input_channels: int = 1
    resolution_prefix_tuning: bool = False
    frequency_token_vocab_size: int = VOCAB_SIZE
    decoder_d_model: int = 128
    decoder_num_layers: int = 2
    decoder_mode: Mode = "common_channel"
    head_dropout: float = 0.7

    @property
    def num_patches(self) -> int:
        """Patches the mixer sees, including the resolution prefix token when enabled."""
        n = (max(self.context_length, self.patch_length) - self.patch_length) // self.patch_stride + 1
        return n + int(self.resolution_prefix_tuning)

    def validate(self) -> TTMConfig:
        """Combinations the annotations cannot express, as one-line config errors."""
        if self.context_length < self.patch_length:
            raise ConfigError(f"timeseries.ttm: context_length={self.context_length} must be at "
                              f"least patch_length={self.patch_length}")
        if self.d_model % (2 ** max(self.adaptive_patching_levels - 1, 0)):
            raise ConfigError(f"timeseries.ttm: d_model={self.d_model} must be divisible by "
                              f"2^(adaptive_patching_levels-1)={2 ** (self.adaptive_patching_levels - 1)}")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # granite-timeseries-ttm-r2, 512-96 (main branch): 805,280 parameters with the point head
    "r2_512_96": asdict(TTMConfig()),
    # a small model for tests and smoke runs: forward+backward on a batch of 2 in milliseconds
    "tiny": asdict(TTMConfig(context_length=64, prediction_length=16, patch_length=8,
                             patch_stride=8, d_model=16, num_layers=1, adaptive_patching_levels=2,
                             decoder_d_model=8, decoder_num_layers=1, dropout=0.0,
                             head_dropout=0.0)),
}
