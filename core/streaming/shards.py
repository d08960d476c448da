"""Tar shards: pack any dataset's splits, stream them back split across ranks and workers.

Format
------
Shards are WebDataset-style POSIX tar files: the fields of sample ``k`` are consecutive members
named ``<k>.<field>.<ext>`` (tensors ``.pth``, NumPy arrays ``.npy``, NumPy scalars
``.scalar.npy``, strings ``.txt``, numbers/bools/lists ``.json``), so they are read in one
sequential pass, can be concatenated, listed with ``tar tf`` and read by the ``webdataset``
library. A folder holds ``index.json`` (the source dataset record and its parameters, its
collate function, batch size, and the shards of each split with their sample counts) and
``train/shard-000000.tar``...

Why tar shards and not Lightning's litdata: NIfTI volumes and GeoTIFF stacks are large samples
read once per epoch, in order, often from object storage; a tar is the simplest container that
streams from any URL (``fsspec``: local, ``s3://``, ``gs://``, ``https://``) with sequential
reads only, needs no server-side index and no extra dependency (the standard library writes and
reads it), keeps each array bit-exact, and is already the de-facto format of large imaging and
EO pretraining corpora (WebDataset). litdata would add its own chunk format, cache and
distributed sampler on top of Lightning's; the few things needed here (split by rank and
worker, equal counts per rank, seeded shuffling) are a page of code.

Distribution and shuffling
--------------------------
Each epoch, with ``C = world_size * num_workers`` consumers: when there are at least ``C``
shards, the (seeded, per-epoch shuffled) shard list is dealt round-robin to the consumers;
otherwise every consumer reads all shards and keeps every ``C``-th sample. Every consumer then
yields the same number of samples (the smallest share), so DDP ranks run the same number of
steps; at most ``max_share - min_share`` samples per consumer are left out of an epoch
(documented padding-free truncation; none when the shards hold equal counts). Samples are
shuffled in windows of ``shuffle_buffer`` with a generator seeded by ``(seed, epoch, consumer)``;
for one consumer and a window covering the split, the order is exactly that of Lightning's
``DistributedSampler`` for the same seed and epoch, so a run streamed from shards reproduces the
run from the folder (``tests/test_streaming.py``).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import posixpath
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from domainfm.errors import ConfigError, DomainfmError
from domainfm.host import Host
from domainfm.schema import NonNegativeInt, PositiveInt
from domainfm.spec import DataSpec
from domainfm.io import atomic_write_text

FORMAT = "domainfm-shards/1 (WebDataset tar)"
INDEX = "index.json"
SPLITS = ("train", "val")


class PackError(DomainfmError):
    """A dataset cannot be packed (a sample field of a type shards cannot hold)."""


# --------------------------------------------------------------------------- encoding


def encode_field(name: str, value: Any) -> tuple[str, bytes]:
    """(extension, bytes) for one sample field."""
    if isinstance(value, torch.Tensor):
        buffer = io.BytesIO()
        torch.save(value.detach().cpu().clone(), buffer)
        return "pth", buffer.getvalue()
    if isinstance(value, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return "npy", buffer.getvalue()
    if isinstance(value, np.generic):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value), allow_pickle=False)
        return "scalar.npy", buffer.getvalue()
    if isinstance(value, str):
        return "txt", value.encode()
    try:
        text = json.dumps(value)
    except TypeError:
        raise PackError(f"sample field {name!r} is a {type(value).__name__}: shards hold tensors, "
                        "NumPy arrays, strings, numbers and lists of them") from None
    return "json", text.encode()


def decode_field(ext: str, data: bytes) -> Any:
    if ext == "pth":
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if ext == "scalar.npy":
        return np.load(io.BytesIO(data), allow_pickle=False)[()]
    if ext == "txt":
        return data.decode()
    if ext == "json":
        return json.loads(data)
    raise DomainfmError(f"unknown shard member extension {ext!r}")


# --------------------------------------------------------------------------- writing


class ShardWriter:
    """Writes samples into ``<root>/<split>/shard-%06d.tar``, a new shard past either limit."""

    def __init__(self, root: Path, split: str, samples_per_shard: int, shard_bytes: int) -> None:
        self.root, self.split = root, split
        self.samples_per_shard, self.shard_bytes = samples_per_shard, shard_bytes
        self.shards: list[dict[str, Any]] = []
        self.count = 0
        self._tar: tarfile.TarFile | None = None
        self._size = 0

    def _open(self) -> None:
        name = f"{self.split}/shard-{len(self.shards):06d}.tar"
        (self.root / self.split).mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / (name + ".tmp")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)
        self.shards.append({"file": name, "samples": 0, "bytes": 0})
        self._size = 0

    def _close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            os.replace(self._tmp, self.root / self.shards[-1]["file"])
            self.shards[-1]["bytes"] = (self.root / self.shards[-1]["file"]).stat().st_size
            self._tar = None

    def write(self, sample: dict[str, Any]) -> None:
        if not isinstance(sample, dict):
            raise PackError(f"samples must be dicts of fields, got {type(sample).__name__}")
        if self._tar is None or self.shards[-1]["samples"] >= self.samples_per_shard \
                or self._size >= self.shard_bytes:
            self._close()
            self._open()
        key = f"{self.count:09d}"
        for field, value in sample.items():
            if "." in field or "/" in field:
                raise PackError(f"sample field {field!r}: names with '.' or '/' cannot be packed")
            ext, data = encode_field(field, value)
            info = tarfile.TarInfo(f"{key}.{field}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            self._tar.addfile(info, io.BytesIO(data))  # type: ignore[union-attr]
            self._size += len(data) + 1024
        self.shards[-1]["samples"] += 1
        self.count += 1

    def close(self) -> dict[str, Any]:
        self._close()
        return {"samples": self.count, "shards": self.shards}


def _collate_path(fn: Any) -> str | None:
    """``module:qualname`` of a collate function that can be imported back, else None."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        return None
    if module == "torch.utils.data._utils.collate" and qualname == "default_collate":
        return "torch.utils.data:default_collate"
    try:
        if _import(f"{module}:{qualname}") is fn:
            return f"{module}:{qualname}"
    except Exception:  # noqa: BLE001 - not importable: fall back to the default
        return None
    return None


def _import(path: str) -> Any:
    module, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _samples(dataset: Any) -> Iterator[Any]:
    if isinstance(dataset, IterableDataset):
        yield from dataset
    else:
        for i in range(len(dataset)):
            yield dataset[i]


def pack(source: str, destination: str | os.PathLike[str], params: dict[str, Any] | None = None,
         *, splits: Sequence[str] = SPLITS, samples_per_shard: int = 256,
         shard_bytes: int = 512 * 2**20, overwrite: bool = False,
         host: Host | None = None) -> Path:
    """Pack the samples of dataset ``source`` (built with ``params``) into tar shards.

    Samples are taken from the datamodule's train and val loaders' datasets, before collation,
    in index order; the collate function is recorded so ``streaming.shards`` batches them the
    same way. Returns the folder written (``index.json`` is written last).
    """
    from domainfm.components import build_datamodule

    host = host or Host()
    params = dict(params or {})
    root = Path(destination)
    if (root / INDEX).exists() and not overwrite:
        raise DomainfmError(f"{root} already holds shards (pass overwrite=True / --overwrite)")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ConfigError(f"unknown split(s) {unknown}; valid: {', '.join(SPLITS)}")
    datamodule = build_datamodule(host, source, params)
    datamodule.setup("fit")
    data_spec = datamodule.data_spec() if hasattr(datamodule, "data_spec") else DataSpec()
    index: dict[str, Any] = {"format": FORMAT, "source": {"name": source, "params": params},
                             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "data_spec": data_spec.to_dict(), "splits": {}}
    for split in splits:
        loader = getattr(datamodule, f"{split}_dataloader")()
        if not isinstance(loader, DataLoader):
            raise PackError(f"{source}: the {split} loader is not a single DataLoader")
        collate = _collate_path(loader.collate_fn)
        index.setdefault("collate", collate)
        writer = ShardWriter(root, split, samples_per_shard, shard_bytes)
        for sample in _samples(loader.dataset):
            writer.write(sample)
        entry = writer.close()
        entry.update(batch_size=loader.batch_size, drop_last=loader.drop_last, collate=collate,
                     own_generator=loader.generator is not None)
        index["splits"][split] = entry
    atomic_write_text(root / INDEX, json.dumps(index, indent=2))
    return root


# --------------------------------------------------------------------------- reading


def _join(root: str, name: str) -> str:
    return posixpath.join(root, name) if "://" in root else str(Path(root) / name)


def read_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    import fsspec

    url = _join(str(path), INDEX)
    try:
        with fsspec.open(url, "rt") as f:
            index = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"data.params.path: no {INDEX} under {path} (write shards with "
                          "`domainfm pack`)") from None
    if not str(index.get("format", "")).startswith("domainfm-shards/1"):
        raise ConfigError(f"{url}: not a domainfm shard index")
    return index


def read_shard(url: str) -> Iterator[dict[str, Any]]:
    """The samples of one tar shard, in order, reading it as a stream."""
    import fsspec

    with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        key, sample = None, {}
        for member in tar:
            if not member.isfile():
                continue
            k, field, ext = member.name.split(".", 2)
            if key is not None and k != key:
                yield sample
                sample = {}
            key = k
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            sample[field] = decode_field(ext, data)
        if key is not None:
            yield sample


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardStream(IterableDataset):
    """Samples of a list of shards for this rank and worker (see the module docstring).

    ``rank``/``world_size`` default to ``torch.distributed``, else the ``RANK`` and
    ``WORLD_SIZE`` environment variables (torchrun and Lightning set them); ``epoch`` is set
    by :class:`ShardDataModule`'s loader at the start of each epoch.
    """

    def __init__(self, urls: Sequence[str], counts: Sequence[int], *, shuffle: bool = False,
                 seed: int = 0, shuffle_buffer: int = 10_000, num_workers: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        self.urls, self.counts = list(urls), list(counts)
        self.shuffle, self.seed, self.shuffle_buffer = shuffle, seed, max(1, shuffle_buffer)
        self.num_workers = num_workers
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def _ranks(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return _world()

    def plan(self, consumer: int, consumers: int) -> tuple[list[int], int, int]:
        """(shards to read, keep-every-n stride, sample limit) of one consumer this epoch."""
        order = list(range(len(self.urls)))
        # one consumer whose window covers the split: the window's permutation alone is
        # DistributedSampler's order (a shuffled shard order before it would change that)
        covered = consumers == 1 and self.shuffle_buffer >= sum(self.counts)
        if self.shuffle and len(order) > 1 and not covered:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(order), generator=g).tolist()
        if len(order) >= consumers:
            shares = [order[c::consumers] for c in range(consumers)]
            limit = min(sum(self.counts[i] for i in share) for share in shares)
            return shares[consumer], 1, limit
        return order, consumers, sum(self.counts) // consumers

    def consumer(self) -> tuple[int, int]:
        rank, world = self._ranks()
        info = get_worker_info()
        workers = info.num_workers if info is not None else 1
        worker = info.id if info is not None else 0
        return rank * workers + worker, world * workers

    def __len__(self) -> int:
        rank, world = self._ranks()
        workers = max(1, self.num_workers)
        return self.plan(rank * workers, world * workers)[2] * workers

    def _read(self, shards: list[int], stride: int, offset: int, limit: int) -> Iterator[Any]:
        position = taken = 0
        for i in shards:
            for sample in read_shard(self.urls[i]):
                keep = position % stride == offset
                position += 1
                if keep:
                    if taken >= limit:
                        return
                    taken += 1
                    yield sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        consumer, consumers = self.consumer()
        shards, stride, limit = self.plan(consumer, consumers)
        samples = self._read(shards, stride, consumer % stride if stride > 1 else 0, limit)
        if not self.shuffle:
            yield from samples
            return
        g = torch.Generator().manual_seed(self.seed + self.epoch + 1_000_003 * consumer)
        window: list[Any] = []
        for sample in samples:
            window.append(sample)
            if len(window) >= self.shuffle_buffer:
                yield from (window[i] for i in torch.randperm(len(window), generator=g).tolist())
                window = []
        yield from (window[i] for i in torch.randperm(len(window), generator=g).tolist())


class _EpochLoader(DataLoader):
    """Tells its :class:`ShardStream` the epoch, rank and world size before each pass."""

    def __init__(self, *args: Any, state: Callable[[], tuple[int, int, int]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = state

    def __iter__(self) -> Any:
        if self._state is not None:
            epoch, rank, world = self._state()
            self.dataset.epoch = epoch  # type: ignore[attr-defined]
            if world > 1 or self.dataset.rank is None:  # type: ignore[attr-defined]
                self.dataset.rank, self.dataset.world_size = rank, world  # type: ignore[attr-defined]
        return super().__iter__()


class ShardDataModule(pl.LightningDataModule):
    """Train/val batches streamed from shards written by ``domainfm pack``.

    Args:
        path: the shard folder (local path or fsspec URL such as ``s3://bucket/shards``).
        source: the dataset record the shards were packed from; checked against the index when
            given (its collate function, recorded at packing time, batches the samples).
        batch_size: per-rank batch size (default: the packed loader's).
        shuffle: shuffle shard order and samples in windows each epoch (train only).
        seed: shuffling seed (default: the run's ``seed``, read from ``PL_GLOBAL_SEED``).
        shuffle_buffer: samples per shuffling window (bounded memory; larger = more random).
        num_workers: DataLoader workers per rank (each reads its own shards).
        drop_last: drop the last incomplete batch (default: the packed loader's choice).
    """

    def __init__(self, *, path: str, source: str | None = None,
                 batch_size: PositiveInt | None = None, shuffle: bool = True,
                 seed: int | None = None, shuffle_buffer: PositiveInt = 10_000,
                 num_workers: NonNegativeInt = 0, drop_last: bool | None = None) -> None:
        super().__init__()
        self.path, self.source = str(path), source
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.shuffle_buffer, self.num_workers, self.drop_last = shuffle_buffer, num_workers, drop_last
        self.index: dict[str, Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        self.index = read_index(self.path)
        packed = self.index["source"]["name"]
        if self.source and self.source != packed:
            raise ConfigError(f"data.params.source is {self.source!r} but {self.path} was packed "
                              f"from {packed!r}")

    def data_spec(self) -> DataSpec:
        """The packed dataset's specification, recorded when it was packed."""
        from domainfm.schema import parse

        if self.index is None:
            self.setup()
        return parse(DataSpec, self.index.get("data_spec") or {}, f"{self.path}/{INDEX} data_spec")

    def split_keys(self, split: str) -> list[tuple[str, int]]:
        """(shard file, position) of every sample of ``split`` (shards hold train and val)."""
        if self.index is None:
            self.setup()
        entry = self.index["splits"].get(split) or {"shards": []}  # type: ignore[union-attr]
        return [(s["file"], i) for s in entry["shards"] for i in range(s["samples"])]

    def _state(self) -> tuple[int, int, int]:
        trainer = self.trainer
        if trainer is None:
            return (0, *_world())
        return trainer.current_epoch, trainer.global_rank, trainer.world_size

    def _loader(self, split: str, train: bool) -> DataLoader | list[Any]:
        if self.index is None:
            self.setup()
        entry = self.index["splits"].get(split)  # type: ignore[index]
        if not entry or not entry["samples"]:
            return []
        collate = entry.get("collate") or self.index.get("collate")  # type: ignore[union-attr]
        seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        stream = ShardStream([_join(self.path, s["file"]) for s in entry["shards"]],
                             [s["samples"] for s in entry["shards"]],
                             shuffle=self.shuffle and train, seed=seed,
                             shuffle_buffer=self.shuffle_buffer, num_workers=self.num_workers)
        # Like the source loader: same batching, and a private generator (no draw from the
        # global RNG when an epoch starts) for training and wherever the source had one.
        drop_last = bool(entry.get("drop_last"))
        if train and self.drop_last is not None:
            drop_last = self.drop_last
        return _EpochLoader(stream, batch_size=self.batch_size or entry.get("batch_size") or 1,
                            collate_fn=_import(collate) if collate else None,
                            num_workers=self.num_workers, drop_last=drop_last,
                            generator=torch.Generator().manual_seed(seed)
                            if train or entry.get("own_generator") else None,
                            state=self._state)

    def train_dataloader(self) -> DataLoader | list[Any]:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader | list[Any]:
        return self._loader("val", False)
