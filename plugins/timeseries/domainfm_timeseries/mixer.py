"""TSMixer building blocks in the granite-tsfm layout (module names match its state dicts).

A block is ``norm -> MLP (expansion, GELU) -> gated attention -> residual``; the patch mixer
works along the patch axis, the feature mixer along d_model, the channel mixer along channels.
Tensors are ``(batch, channels, patches, features)`` throughout.

The patch and channel mixers multiply by their weights from the left (``W @ x`` over the mixed
axis) instead of moving that axis last and back: the same result without two transposed copies
of every activation, which on CPU cost more than the small matrix products themselves.
"""

from __future__ import annotations

import torch
from torch import nn


def linear_along(layer: nn.Linear, x: torch.Tensor, dim: int) -> torch.Tensor:
    """``layer`` applied along ``dim`` of ``x``: ``-1`` (features) or ``-2`` (``x`` is
    ``(batch, size, rest)``: one batched ``bias + weight @ x``, the fastest form on CPU).

    Reads ``layer.weight`` and ``layer.bias`` rather than calling the module (whose call overhead
    is a tenth of a batch-1 forecast); LoRA layers expose their adapted weight the same way."""
    if dim == -1:
        return nn.functional.linear(x, layer.weight, layer.bias)
    return torch.baddbmm(layer.bias.unsqueeze(-1), layer.weight.expand(len(x), -1, -1), x)


def gated(layer: nn.Linear, x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x * softmax(layer(x))`` along ``dim`` (see :func:`linear_along`)."""
    return x * torch.softmax(linear_along(layer, x, dim), dim=dim)


class GatedAttention(nn.Module):
    """``x * softmax(Linear(x))``: a learned soft selection over axis ``dim`` (-1 or -2)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.attn_layer = nn.Linear(size, size)

    def forward(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        return gated(self.attn_layer, x, dim)


class Dropout(nn.Dropout):
    """Inverted dropout with a cheaper random draw on CPU, where torch's own path (one float per
    element from a serial generator) is the largest single cost of a TTM training step.

    Each 64-bit random word gives four 15-bit draws (``random_`` leaves the top bit 0, so the
    sign bit of every 16-bit quarter is masked off), so a mask costs a quarter of the generator
    calls. The drop probability is rounded to a multiple of 1/32768 (at most 1.5e-5 off) and the
    kept values are scaled by the rounded keep probability, so the expectation is unchanged.
    Other devices use torch's fused dropout.
    """

    RESOLUTION = 1 << 15

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return super().forward(x)
        threshold = round(self.p * self.RESOLUTION)
        words = torch.empty(-(-x.numel() // 4), dtype=torch.int64).random_()
        draws = words.view(torch.int16)[: x.numel()].view(x.shape) & (self.RESOLUTION - 1)
        scale = self.RESOLUTION / (self.RESOLUTION - threshold)
        return x * ((draws >= threshold) * scale).to(x.dtype)


class MLP(nn.Module):
    def __init__(self, size: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(size, size * expansion)
        self.fc2 = nn.Linear(size * expansion, size)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        return feed_forward(self, x, dim)


def feed_forward(mlp: MLP, x: torch.Tensor, dim: int) -> torch.Tensor:
    """``fc2(gelu(fc1(x)))`` along ``dim`` (see :func:`linear_along`), dropout when training."""
    hidden = nn.functional.gelu(linear_along(mlp.fc1, x, dim))
    if mlp.training:
        hidden = mlp.dropout(hidden)
    out = linear_along(mlp.fc2, hidden, dim)
    return mlp.dropout(out) if mlp.training else out


class Norm(nn.Module):
    """LayerNorm over d_model, wrapped so keys read ``norm.norm.*`` as in granite-tsfm."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class _MixerBlock(nn.Module):
    """Norm over d_model, then MLP + gate along ``axis``, plus residual. For ``axis`` -2 or -3
    the input is viewed as ``(batch, size, rest)``, so the mixing is ``W @ x`` per row of it."""

    axis = -1
    gate_first = False  # granite gates the channel mixer before its MLP, the others after

    def __init__(self, d_model: int, size: int, expansion: int, dropout: float, gated: bool) -> None:
        super().__init__()
        self.norm = Norm(d_model)
        self.mlp = MLP(size, expansion, dropout)
        self.gating_block = GatedAttention(size) if gated else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # submodules' parameters are used directly: at batch 1 each module call costs about
        # as much as the small operation behind it
        norm = self.norm.norm
        h = torch.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        dim = -1 if self.axis == -1 else -2
        if dim == -2:  # (batch * channels, patches, features) or (batch, channels, rest)
            h = h.reshape(-1, *x.shape[self.axis:]).flatten(2)
        gate = self.gating_block
        if gate is not None and self.gate_first:
            h = gated(gate.attn_layer, h, dim)
        h = feed_forward(self.mlp, h, dim)
        if gate is not None and not self.gate_first:
            h = gated(gate.attn_layer, h, dim)
        return (h if dim == -1 else h.reshape(x.shape)) + x


class PatchMixerBlock(_MixerBlock):
    axis = -2


class FeatureMixerBlock(_MixerBlock):
    axis = -1


class ChannelFeatureMixerBlock(_MixerBlock):
    axis = -3
    gate_first = True


class MixerLayer(nn.Module):
    """Optional channel mixing (``mix_channel``), then patch mixing, then feature mixing."""

    def __init__(self, *, num_patches: int, d_model: int, num_channels: int, expansion: int,
                 dropout: float, mode: str, gated: bool = True) -> None:
        super().__init__()
        self.channel_feature_mixer = (ChannelFeatureMixerBlock(
            d_model, num_channels, expansion, dropout, gated) if mode == "mix_channel" else None)
        self.patch_mixer = (PatchMixerBlock(d_model, num_patches, expansion, dropout, gated)
                            if num_patches > 1 else None)
        self.feature_mixer = FeatureMixerBlock(d_model, d_model, expansion, dropout, gated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_feature_mixer is not None:
            x = self.channel_feature_mixer(x)
        if self.patch_mixer is not None:
            x = self.patch_mixer(x)
        return self.feature_mixer(x)


class AdaptivePatchingLevel(nn.Module):
    """Level i: reshape (N, D) -> (N * 2^i, D / 2^i), mix, reshape back (adaptive patching)."""

    def __init__(self, *, level: int, num_layers: int, num_patches: int, d_model: int,
                 **layer: object) -> None:
        super().__init__()
        factor = 2 ** level
        if d_model // factor <= 4:  # granite disables a level that would leave <= 4 features
            factor = 1
        if d_model % factor:
            raise ValueError(f"d_model={d_model} must be divisible by 2^{level} for adaptive patching")
        self.factor = factor
        self.mixer_layers = nn.ModuleList(
            MixerLayer(num_patches=num_patches * factor, d_model=d_model // factor, **layer)
            for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n, d = x.shape
        x = x.reshape(b, c, n * self.factor, d // self.factor)
        for layer in self.mixer_layers:
            x = layer(x)
        return x.reshape(b, c, n, d)


class MixerStack(nn.Module):
    """``mixers``: adaptive levels run coarse-to-fine (``levels > 0``) or plain mixer layers."""

    def __init__(self, *, levels: int, num_layers: int, num_patches: int, d_model: int,
                 num_channels: int, expansion: int, dropout: float, mode: str,
                 gated: bool = True) -> None:
        super().__init__()
        layer = dict(num_channels=num_channels, expansion=expansion, dropout=dropout, mode=mode,
                     gated=gated)
        if levels > 0:
            self.mixers = nn.ModuleList(
                AdaptivePatchingLevel(level=i, num_layers=num_layers, num_patches=num_patches,
                                      d_model=d_model, **layer)
                for i in reversed(range(levels)))
        else:
            self.mixers = nn.ModuleList(
                MixerLayer(num_patches=num_patches, d_model=d_model, **layer)
                for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states = []
        for mixer in self.mixers:
            x = mixer(x)
            states.append(x)
        return x, states
