"""Prithvi encoder sizes (reference card); `tiny` for tests and CPU runs.

Kept free of heavy imports: the plugin hooks read it when plugins are listed.
"""

from typing import Any

_BIG = dict(img_size=224, patch_size=16, mlp_ratio=4.0,
            decoder_dim=512, decoder_depth=8, decoder_heads=16)
PRESETS: dict[str, dict[str, Any]] = {
    # small enough for a CPU forward+backward in milliseconds; same architecture
    "tiny": dict(img_size=32, patch_size=8, num_frames=3, embed_dim=64, depth=2, num_heads=4,
                 mlp_ratio=4.0, decoder_dim=64, decoder_depth=2, decoder_heads=4),
    "eo1_100m": dict(_BIG, num_frames=3, embed_dim=768, depth=12, num_heads=12),
    "eo2_tiny_tl": dict(_BIG, num_frames=1, embed_dim=192, depth=12, num_heads=3,
                        temporal_encoding=True, location_encoding=True),
    "eo2_100m": dict(_BIG, num_frames=4, embed_dim=768, depth=12, num_heads=12),
    "eo2_300m": dict(_BIG, num_frames=4, embed_dim=1024, depth=24, num_heads=16),
    "eo2_600m": dict(_BIG, patch_size=14, num_frames=4, embed_dim=1280, depth=32, num_heads=16),
}
