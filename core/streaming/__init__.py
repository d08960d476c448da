"""Built-in plugin: streaming training data from tar shards (dataset ``streaming.shards``).

``domainfm pack`` writes any dataset's train/val splits as shards; a run then names
``data: {name: streaming.shards, params: {path: <shards>}}`` instead of the folder dataset.
The work is done in :mod:`domainfm.streaming.shards`; this module only declares the record and
imports nothing heavy, so listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

from domainfm.hookspecs import hookimpl
from domainfm.records import DatasetRecord


@hookimpl
def domainfm_datasets() -> list[Any]:
    return [DatasetRecord(
        "streaming.shards",
        "Samples streamed from WebDataset-style tar shards written by `domainfm pack` "
        "(local folder or any fsspec URL), split across ranks and workers.",
        "domainfm.streaming.shards:ShardDataModule",
    )]
