"""Per-rank sample accounting over one epoch, for every installed dataset, at world size 2.

Each dataset is built with its record's ``tiny_params`` and its train and val loaders are split
the way Lightning splits them under DDP:

* map-style datasets: Lightning injects a ``DistributedSampler`` (plain samplers) or a
  ``DistributedSamplerWrapper`` around the plugin's own sampler (geo samplers, the GCC instance
  sampler...), seeded by the run's seed. A loader that already has a ``DistributedSampler`` is
  left alone by Lightning and used as it is.
* iterable datasets split themselves; they are read with ``RANK``/``WORLD_SIZE`` set.

An epoch's items are what the sampler yields (indices, or the plugin sampler's keys such as
bounding boxes); for iterable datasets a fingerprint of each sample's tensors. The union of the
two ranks' items must be the whole epoch, with no duplicates beyond Lightning's documented
padding (``DistributedSampler`` repeats at most ``world_size - 1`` items so every rank gets the
same count), the ranks must get equal counts, and the split must be reproducible from the seed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch.utilities.data import _is_dataloader_shuffled
from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, IterableDataset

from domainfm.host import Host

WORLD = 2
SEED = 11
NOT_BUILT_HERE = {"streaming.shards": "needs packed shards; its rank split is tested in tests/test_streaming.py"}


def _records() -> list[Any]:
    return sorted(Host().components("dataset"), key=lambda r: r.name)


def _fingerprint(value: Any) -> str:
    digest = hashlib.sha1()

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            digest.update(str((v.dtype, tuple(v.shape))).encode())
            digest.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, dict):
            for k in sorted(v):
                digest.update(str(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            for x in v:
                feed(x)
        else:
            digest.update(repr(v).encode())

    feed(value)
    return digest.hexdigest()


def _key(item: Any) -> Any:
    try:
        hash(item)
        return item
    except TypeError:
        return _fingerprint(item)


def _loader(record: Any, split: str, rank: int) -> DataLoader:
    datamodule = record.build(**record.tiny_params)
    # What a plugin may read to be rank-aware, as under a DDP Trainer.
    datamodule.trainer = SimpleNamespace(world_size=WORLD, global_rank=rank, local_rank=rank,
                                         current_epoch=0, is_global_zero=rank == 0,
                                         num_devices=WORLD, num_nodes=1)
    datamodule.setup("fit")
    return getattr(datamodule, f"{split}_dataloader")()


def _sampler_items(sampler: Any) -> list[Any]:
    if isinstance(sampler, BatchSampler):
        sampler = sampler.sampler
    items = []
    for item in sampler:
        if isinstance(item, (list, tuple)) and not isinstance(sampler, DistributedSampler) \
                and all(isinstance(i, int) for i in item):
            items.extend(item)  # a batch sampler's batches
        else:
            items.append(_key(item))
    return items


def _rank_items(record: Any, split: str, rank: int, monkeypatch: pytest.MonkeyPatch
                ) -> tuple[list[Any], list[Any] | None, str]:
    """(this rank's items, the whole epoch's items or None, how it was split)."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(WORLD))
    monkeypatch.setenv("PL_GLOBAL_SEED", str(SEED))
    loader = _loader(record, split, rank)
    if not isinstance(loader, DataLoader):
        pytest.skip(f"{record.name}: the {split} loader is a {type(loader).__name__}, not a DataLoader")
    if isinstance(loader.dataset, IterableDataset):
        return [_fingerprint(s) for s in loader.dataset], None, "iterable"
    if isinstance(loader.sampler, DistributedSampler):
        return list(loader.sampler), list(range(len(loader.dataset))), "plugin DistributedSampler"
    original = loader.batch_sampler if type(loader.batch_sampler) is not BatchSampler else loader.sampler
    whole = _sampler_items(original) if type(original).__name__ not in ("RandomSampler", "SequentialSampler") \
        else list(range(len(loader.dataset)))
    shuffle = split == "train" and _is_dataloader_shuffled(loader)
    sampler = _get_distributed_sampler(loader, shuffle, overfit_batches=0, num_replicas=WORLD,
                                       rank=rank, seed=SEED)
    sampler.set_epoch(0)
    return _sampler_items(sampler), whole, type(sampler).__name__


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("name", [r.name for r in _records()])
def test_ranks_share_an_epoch(name, split, monkeypatch):
    if name in NOT_BUILT_HERE:
        pytest.skip(f"{name}: {NOT_BUILT_HERE[name]}")
    record = Host().get("dataset", name)
    try:
        shares = [_rank_items(record, split, rank, monkeypatch) for rank in range(WORLD)]
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"{name}: its tiny parameters need data that is absent here ({exc})")
    items = [share[0] for share in shares]
    whole, how = shares[0][1], shares[0][2]
    again = _rank_items(record, split, 0, monkeypatch)[0]
    assert again == items[0], f"{name} ({how}): rank 0's share is not reproducible from the seed"
    assert len(items[0]) == len(items[1]), f"{name} ({how}): ranks get unequal shares"
    union = Counter(items[0]) + Counter(items[1])
    if whole is None:  # iterable: only disjointness and equal counts can be checked
        assert max(union.values(), default=1) == 1, f"{name}: iterable ranks overlap"
        return
    expected = Counter(whole)
    assert set(union) == set(expected), f"{name} ({how}): the ranks do not cover the epoch"
    padding = sum((union - expected).values())
    assert padding <= WORLD - 1, f"{name} ({how}): {padding} duplicated items beyond the padding"
