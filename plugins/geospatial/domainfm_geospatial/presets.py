"""Prithvi encoder sizes (reference card); `tiny` for tests and CPU runs.

``norm_eps`` is the epsilon of every LayerNorm (blocks, final norm, MAE decoder). TerraTorch
1.2.11 builds every official Prithvi config with ``norm_layer=nn.LayerNorm``, i.e. eps 1e-5,
and so do these presets (``bench/geospatial_reference.py`` checks the outputs agree within
1e-5). The original EO-1.0 fine-tuning code used ``partial(nn.LayerNorm, eps=1e-6)``: set
``encoder.params.norm_eps: 1.0e-6`` to reproduce it.

Kept free of heavy imports: the plugin hooks read it when plugins are listed.
"""

from typing import Any

NORM_EPS = 1e-5  # nn.LayerNorm's default, as TerraTorch builds every official config

_BIG = dict(img_size=224, patch_size=16, mlp_ratio=4.0, norm_eps=NORM_EPS,
            decoder_dim=512, decoder_depth=8, decoder_heads=16)
PRESETS: dict[str, dict[str, Any]] = {
    # small enough for a CPU forward+backward in milliseconds; same architecture
    "tiny": dict(img_size=32, patch_size=8, num_frames=3, embed_dim=64, depth=2, num_heads=4,
                 mlp_ratio=4.0, norm_eps=NORM_EPS, decoder_dim=64, decoder_depth=2,
                 decoder_heads=4),
    "eo1_100m": dict(_BIG, num_frames=3, embed_dim=768, depth=12, num_heads=12),
    "eo2_tiny_tl": dict(_BIG, num_frames=1, embed_dim=192, depth=12, num_heads=3,
                        temporal_encoding=True, location_encoding=True),
    "eo2_100m": dict(_BIG, num_frames=4, embed_dim=768, depth=12, num_heads=12),
    "eo2_300m": dict(_BIG, num_frames=4, embed_dim=1024, depth=24, num_heads=16),
    "eo2_600m": dict(_BIG, patch_size=14, num_frames=4, embed_dim=1280, depth=32, num_heads=16),
}
