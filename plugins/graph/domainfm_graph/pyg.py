"""torch-geometric, imported in one place.

Importing PyG 2.8 under torch 2.14 warns that ``torch.jit.script`` is deprecated (PyG scripts a
few helpers at import time). The warning is PyG's, not the user's, and on the command line it
would be an extra stderr line before every one-line error, so it is silenced here, for this
import only.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                            category=FutureWarning)
    from torch_geometric.data import Batch, Data
    from torch_geometric.nn import GINConv, global_add_pool
    from torch_geometric.utils import to_dense_batch

__all__ = ["Batch", "Data", "GINConv", "global_add_pool", "to_dense_batch"]
