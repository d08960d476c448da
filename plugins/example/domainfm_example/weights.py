"""Key mappings from other checkpoint layouts to the example encoder (timm's filter pattern).

The host reads the file and loads the result strictly; a mapping only renames keys.
"""

from __future__ import annotations

import torch
from torch import nn

WRAPPER_PREFIXES = ("module.", "model.", "encoder.")


def plain_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A ``torch.save(encoder.state_dict())`` file, possibly saved from a wrapper
    (``DataParallel``'s ``module.``, a Lightning module's ``model.`` or ``encoder.``)."""
    own = set(model.state_dict())
    out = {}
    for key, value in state.items():
        name = key
        while name not in own and name.startswith(WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        out[name] = value
    return out
