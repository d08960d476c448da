"""The Prithvi temporal Vision Transformer (EO-1.0 and EO-2.0), as an encoder of the host.

Input ``(B, C, T, H, W)`` is cut into tubelets by a 3D convolution; fixed 3D sin-cos positions
(width 6/16, height 6/16, time 4/16 of the channels; zero row for the class token) are recomputed
for whatever grid arrives, so other image sizes and frame counts work without retraining. EO-2.0
"TL" models add sin-cos encodings of (year, day-of-year) per frame and (lat, lon) per sample,
each scaled by a learned factor initialised at 0.1. Module names follow the official checkpoints
so that the ``prithvi`` layout (:mod:`domainfm_geospatial.weights`) maps them one to one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from timm.models.vision_transformer import Block
import torch.nn.functional as F
from torch import Tensor, nn

from domainfm.errors import ConfigError, DomainfmError
from domainfm.records import NonNegativeFloat, PositiveFloat, PositiveInt

from domainfm_geospatial.bands import HLS_BANDS
from domainfm_geospatial.presets import NORM_EPS, PRESETS


class MissingInputError(DomainfmError):
    pass


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """``(N,) -> (N, dim)`` sin-cos encoding of (possibly fractional) positions."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.reshape(-1, 1).double() * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


@functools.lru_cache(maxsize=32)
def sincos_3d(dim: int, grid: tuple[int, int, int], cls_token: bool = True) -> Tensor:
    """Fixed 3D positions for a (T, h, w) token grid, with a zero row for the class token."""
    dim_w = dim_h = dim // 16 * 6
    dim_t = dim - dim_w - dim_h
    t, h, w = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in grid), indexing="ij")
    embed = torch.cat([sincos_1d(dim_w, w), sincos_1d(dim_h, h), sincos_1d(dim_t, t)], dim=1)
    if cls_token:
        embed = torch.cat([torch.zeros(1, dim), embed])
    return embed.unsqueeze(0)


class TemporalEncoder(nn.Module):
    """(year, day-of-year) per frame -> scaled sin-cos, repeated over the frame's tokens."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.year_dim = embed_dim // 2
        self.day_dim = embed_dim - self.year_dim
        self.scale = nn.Parameter(torch.full((1,), 0.1))

    def forward(self, coords: Tensor, tokens_per_frame: int) -> Tensor:
        b, t, _ = coords.shape
        year = sincos_1d(self.year_dim, coords[..., 0]).reshape(b, t, -1)
        day = sincos_1d(self.day_dim, coords[..., 1]).reshape(b, t, -1)
        embed = self.scale * torch.cat([year, day], dim=-1).to(self.scale.dtype)
        return embed.repeat_interleave(tokens_per_frame, dim=1)


class LocationEncoder(nn.Module):
    """(lat, lon) per sample -> scaled sin-cos added to every token."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.lat_dim = embed_dim // 2
        self.lon_dim = embed_dim - self.lat_dim
        self.scale = nn.Parameter(torch.full((1,), 0.1))

    def forward(self, coords: Tensor) -> Tensor:
        lat = sincos_1d(self.lat_dim, coords[:, 0])
        lon = sincos_1d(self.lon_dim, coords[:, 1])
        return (self.scale * torch.cat([lat, lon], dim=-1).to(self.scale.dtype)).unsqueeze(1)


class PatchEmbed(nn.Module):
    """Tubelets of ``tubelet x patch x patch`` pixels -> tokens, ordered (T, h, w).

    The weights are the official ``Conv3d`` (so checkpoints load as they are), applied as one
    matrix product over non-overlapping tubelets: the same numbers, several times faster on CPU
    than a strided 3D convolution, above all in the backward pass.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def grid(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """Token grid ``(T, h, w)`` of an input of ``shape`` ``(B, C, T, H, W)``."""
        kt, kp, _ = self.proj.kernel_size
        return shape[2] // kt, shape[3] // kp, shape[4] // kp

    def forward(self, x: Tensor, keep: Tensor | None = None) -> tuple[Tensor, tuple[int, int, int]]:
        """Tokens ``(B, N, D)``, or only those at ``keep`` ``(B, K)`` (MAE: the masked tubelets
        are never embedded)."""
        b, c = x.shape[:2]
        kt, kp, _ = self.proj.kernel_size
        grid = self.grid(x.shape)
        x = x.reshape(b, c, grid[0], kt, grid[1], kp, grid[2], kp)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, grid[0] * grid[1] * grid[2], -1)
        if keep is not None:
            x = select_tokens(x, keep)
        weight = self.proj.weight.reshape(self.proj.out_channels, -1)
        return F.linear(x, weight, self.proj.bias), grid


def select_tokens(tokens: Tensor, keep: Tensor) -> Tensor:
    """``tokens`` ``(B or 1, N, D)`` at positions ``keep`` ``(B, K)`` -> ``(B, K, D)``."""
    tokens = tokens.expand(keep.shape[0], -1, -1)
    return tokens.gather(1, keep[..., None].expand(-1, -1, tokens.shape[-1]))


class PrithviViT(nn.Module):
    """Prithvi's encoder; ``forward(batch)`` returns embedding, tokens, hidden_states and grid."""

    def __init__(self, *, bands: list[str], img_size: int, patch_size: int, num_frames: int,
                 tubelet_size: int, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 temporal_encoding: bool, location_encoding: bool, drop_path: float,
                 norm_eps: float, decoder_dim: int, decoder_depth: int, decoder_heads: int) -> None:
        super().__init__()
        if embed_dim % 16:
            raise DomainfmError(f"embed_dim must be a multiple of 16 for 3D sin-cos positions, "
                                f"got {embed_dim}")
        self.bands = list(bands)
        self.in_chans = len(bands)
        self.img_size, self.patch_size, self.num_frames = img_size, patch_size, num_frames
        self.tubelet_size = tubelet_size
        self.embed_dim, self.norm_eps = embed_dim, norm_eps
        self.temporal_encoding, self.location_encoding = temporal_encoding, location_encoding
        self.decoder_defaults = dict(decoder_dim=decoder_dim, decoder_depth=decoder_depth,
                                     decoder_heads=decoder_heads)
        self.patch_embed = PatchEmbed(self.in_chans, embed_dim, patch_size, tubelet_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if temporal_encoding:
            self.temporal_embed_enc = TemporalEncoder(embed_dim)
        if location_encoding:
            self.location_embed_enc = LocationEncoder(embed_dim)
        rates = [drop_path * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=rate,
                  norm_layer=functools.partial(nn.LayerNorm, eps=norm_eps))
            for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ inputs

    def pixels(self, batch: dict[str, Any]) -> Tensor:
        """``batch["image"]`` as ``(B, C, T, H, W)``, checked against the model's layout."""
        if "image" not in batch:
            raise MissingInputError(f"the batch has no 'image' (keys: {sorted(batch)})")
        x = batch["image"]
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise DomainfmError(f"'image' must be (B, C, T, H, W) or (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise DomainfmError(
                f"'image' has {x.shape[1]} bands but the encoder expects {self.in_chans} "
                f"({', '.join(self.bands)})"
            )
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size or x.shape[2] % self.tubelet_size:
            raise DomainfmError(
                f"image {h}x{w} with {x.shape[2]} frames is not a multiple of the patch size "
                f"{self.patch_size} and tubelet size {self.tubelet_size}"
            )
        return x

    def coords(self, batch: dict[str, Any], frames: int) -> tuple[Tensor | None, Tensor | None]:
        """Temporal ``(B, T, 2)`` and location ``(B, 2)`` coordinates the model needs."""
        temporal = location = None
        if self.temporal_encoding:
            temporal = batch.get("temporal_coords")
            if temporal is None:
                raise MissingInputError(
                    "this encoder has temporal encoding: the batch needs 'temporal_coords' "
                    "(B, T, 2) = (year, day-of-year) per frame; give the files' dates "
                    "(filenames with a date) or turn temporal_encoding off"
                )
            if temporal.shape[1] != frames:
                raise DomainfmError(f"'temporal_coords' has {temporal.shape[1]} dates but the "
                                    f"image has {frames} frames")
            temporal = temporal[:, :: self.tubelet_size]
        if self.location_encoding:
            location = batch.get("location_coords")
            if location is None:
                raise MissingInputError(
                    "this encoder has location encoding: the batch needs 'location_coords' "
                    "(B, 2) = (lat, lon); use georeferenced files or turn location_encoding off"
                )
        return temporal, location

    # ------------------------------------------------------------------ model

    def embed(self, x: Tensor, temporal: Tensor | None, location: Tensor | None,
              keep: Tensor | None = None) -> tuple[Tensor, tuple[int, int, int]]:
        """Tokens plus positions (and time/location encodings), without the class token; only
        those at ``keep`` ``(B, K)`` when given."""
        tokens, grid = self.patch_embed(x, keep)

        def chosen(per_token: Tensor) -> Tensor:
            return per_token if keep is None else select_tokens(per_token, keep)

        tokens = tokens + chosen(sincos_3d(self.embed_dim, grid)[:, 1:].to(tokens))
        if temporal is not None:
            tokens = tokens + chosen(self.temporal_embed_enc(temporal, grid[1] * grid[2]))
        if location is not None:
            tokens = tokens + self.location_embed_enc(location)
        return tokens, grid

    def transform(self, tokens: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Class token + blocks + norm; returns normed tokens (with class) and block outputs.

        The last block's output is given normed, as TerraTorch's Prithvi does: dense heads then
        use every encoder parameter (plain DDP needs no unused-parameter search).
        """
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # its position row is zero
        x = torch.cat([cls, tokens], dim=1)
        hidden = []
        for block in self.blocks:
            x = block(x)
            hidden.append(x[:, 1:])
        x = self.norm(x)
        hidden[-1] = x[:, 1:]
        return x, hidden

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        x = self.pixels(batch)
        temporal, location = self.coords(batch, x.shape[2])
        tokens, grid = self.embed(x, temporal, location)
        out, hidden = self.transform(tokens)
        patches = out[:, 1:]
        return {"embedding": patches.mean(dim=1), "cls": out[:, 0], "tokens": patches,
                "hidden_states": hidden, "grid": grid}


def build_prithvi(
    preset: str = "tiny",
    *,
    bands: list[str] | None = None,
    img_size: PositiveInt | None = None,
    patch_size: PositiveInt | None = None,
    num_frames: PositiveInt | None = None,
    tubelet_size: PositiveInt = 1,
    embed_dim: PositiveInt | None = None,
    depth: PositiveInt | None = None,
    num_heads: PositiveInt | None = None,
    mlp_ratio: PositiveFloat | None = None,
    norm_eps: PositiveFloat | None = None,
    temporal_encoding: bool | None = None,
    location_encoding: bool | None = None,
    drop_path: NonNegativeFloat = 0.0,
    decoder_dim: PositiveInt | None = None,
    decoder_depth: PositiveInt | None = None,
    decoder_heads: PositiveInt | None = None,
) -> PrithviViT:
    """Build a preset and override any field.

    ``bands`` names the input channels (default the six HLS bands). ``norm_eps`` is the
    LayerNorm epsilon (1e-5 in every preset, as TerraTorch; the original EO-1.0 fine-tuning
    code used 1e-6). Official checkpoints are not a build parameter: name one as the encoder's
    ``weights`` (layout ``prithvi``).
    ``decoder_*`` are the MAE decoder sizes that ``geospatial.mae`` uses unless told otherwise.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r} for geospatial.prithvi; "
                          f"choose one of {', '.join(PRESETS)}")
    given = dict(img_size=img_size, patch_size=patch_size, num_frames=num_frames,
                 embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                 norm_eps=norm_eps, temporal_encoding=temporal_encoding,
                 location_encoding=location_encoding, decoder_dim=decoder_dim,
                 decoder_depth=decoder_depth, decoder_heads=decoder_heads)
    params: dict[str, Any] = dict(temporal_encoding=False, location_encoding=False,
                                  norm_eps=NORM_EPS)
    params.update(PRESETS[preset])
    params.update({k: v for k, v in given.items() if v is not None})
    model = PrithviViT(bands=list(bands or HLS_BANDS), tubelet_size=tubelet_size,
                       drop_path=drop_path, **params)
    model.preset = preset
    return model


def grid_tokens(tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """``(B, T*h*w, D) -> (B, T*D, h, w)``: frames stacked along channels for 2D decoders."""
    b, _, d = tokens.shape
    t, h, w = grid
    return tokens.reshape(b, t, h, w, d).permute(0, 1, 4, 2, 3).reshape(b, t * d, h, w)


def ceil_log2(n: int) -> int:
    return max(0, math.ceil(math.log2(n)))
