"""BM-MAE encoder sizes: `tiny` for tests and CPU, `base` as in the reference (ViT-B).

Kept free of heavy imports: the plugin hooks read it when plugins are listed.
"""

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(img_size=32, patch_size=8, embed_dim=192, depth=4, num_heads=3, mlp_dim=384),
    "small": dict(img_size=96, patch_size=16, embed_dim=384, depth=8, num_heads=6, mlp_dim=768),
    "base": dict(img_size=128, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_dim=1536),
}
