"""Encoder sizes of the example plugin. Kept free of heavy imports: listing plugins reads it."""

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"patch": 4, "width": 32, "depth": 2, "heads": 2},
    "small": {"patch": 4, "width": 64, "depth": 4, "heads": 4},
}
