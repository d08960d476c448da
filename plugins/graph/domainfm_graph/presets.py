"""GCC encoder sizes: the paper's GIN and a `tiny` one for tests.

Kept free of heavy imports: the plugin hooks read it when plugins are listed.
"""

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # GCC: 5 GIN layers counting the input, i.e. 4 GINConv; 64 wide; degree embedding 16
    "gcc": {"hidden_dim": 64, "output_dim": 64, "num_layers": 4, "degree_dim": 16,
            "dropout": 0.5},
    "tiny": {"hidden_dim": 16, "output_dim": 16, "num_layers": 2, "degree_dim": 4,
             "dropout": 0.0},
}
