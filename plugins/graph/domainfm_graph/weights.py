"""Key mappings from other checkpoint layouts to ``graph.gcc_gin`` (timm's filter pattern).

The host reads the file and loads the result strictly; a mapping only renames keys.

``gcc``: the ``GraphEncoder(gnn_model="gin")`` of THUDM/GCC (``model`` or ``model_ema`` in its
``.pth`` checkpoints). Its ``set2set`` and ``lin_readout`` exist but are unused with the GIN
readout and are dropped; GINConv's ``eps`` buffer (0: GCC builds it with ``learn_eps=False``)
maps to PyG's. GCC pickles its ``argparse`` options into the checkpoint, which weights-only loading
refuses: save the state dict alone first (``torch.save(torch.load(p)["model"], "gcc.pt")``,
in GCC's own environment).
"""

from __future__ import annotations

import re

import torch
from torch import nn

_GCC = [
    (r"gnn\.ginlayers\.(\d+)\.apply_func\.mlp\.linears\.0\.", r"convs.\1.nn.0."),
    (r"gnn\.ginlayers\.(\d+)\.apply_func\.mlp\.batch_norms\.0\.", r"convs.\1.nn.1."),
    (r"gnn\.ginlayers\.(\d+)\.apply_func\.mlp\.linears\.1\.", r"convs.\1.nn.3."),
    (r"gnn\.ginlayers\.(\d+)\.apply_func\.bn\.", r"convs.\1.nn.4."),
    (r"gnn\.batch_norms\.(\d+)\.", r"norms.\1."),
    (r"gnn\.linears_prediction\.(\d+)\.", r"readout.\1."),
    (r"gnn\.ginlayers\.(\d+)\.eps", r"convs.\1.eps"),
]
_UNUSED = ("set2set.", "lin_readout.")


def gcc_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """THUDM/GCC's GIN ``GraphEncoder`` state dict in this encoder's keys."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(_UNUSED):
            continue
        for pattern, target in _GCC:
            key = re.sub("^" + pattern, target, key)
        out[key] = value
    return out
