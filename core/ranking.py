"""``domainfm rank``: which pretrained encoder (or none) to fine-tune for a target dataset.

Each candidate (an export folder, a run folder or checkpoint, an encoder config section naming
released weights, or ``random``: the target's encoder with random weights) encodes the target's
training split frozen, in eval mode; its pooled embeddings are scored against the targets by
LogME and by a linear probe on a held-out part of the training split
(:mod:`domainfm.transferability`; dense targets are summarised per sample as documented
there). Nothing is fine-tuned, so ranking costs a few forward passes per candidate. The ranked
table is printed and written, with a bar chart, to the output folder; a candidate that cannot
encode the target data stops the ranking with one line naming it, before anything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from domainfm.components import build_encoder
from domainfm.config import EncoderChoice, WeightsChoice, load_config
from domainfm.errors import ConfigError, DomainfmError
from domainfm.host import Host
from domainfm.io import atomic_write_text
from domainfm.model import load_model
from domainfm.schema import coerce
from domainfm.session import Session
from domainfm.spec import PartSpec
from domainfm.transferability import logme, probe_score, summarise_targets
from domainfm.weights import load_part_weights

RANDOM = "random"


@dataclass
class Ranking:
    """Candidates best first, with their scores, and where the table and chart were written."""

    rows: list[dict[str, Any]]
    seconds: float
    samples: int
    files: list[Path] = field(default_factory=list)

    def table(self) -> str:
        lines = ["| rank | candidate | LogME | linear probe | features | seconds |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {i + 1} | `{r['candidate']}` | {r['logme']:.4f} | {r['probe']:.4f} | "
                  f"{r['dim']} | {r['seconds']:.1f} |" for i, r in enumerate(self.rows)]
        return "\n".join(lines)


def parse_candidate(text: str | dict[str, Any]) -> str | EncoderChoice:
    """A path, ``random``, or an encoder section (a mapping or its YAML text)."""
    if isinstance(text, dict) or (isinstance(text, str) and text.strip().startswith("{")):
        raw = yaml.safe_load(text) if isinstance(text, str) else text
        return coerce(EncoderChoice, raw, "candidate")
    return str(text)


def _encoder(host: Host, candidate: str | EncoderChoice, fallback: PartSpec | None) -> Any:
    if isinstance(candidate, EncoderChoice):
        record = host.get("encoder", candidate.name)
        encoder = build_encoder(host, PartSpec(candidate.name, dict(candidate.params), candidate.preset))
        if candidate.weights is not None:
            w: WeightsChoice = candidate.weights
            load_part_weights(encoder, "encoder", record.weights, w.path, w.layout, w.params)
        return encoder
    if candidate == RANDOM:
        if fallback is None:
            raise ConfigError("candidate 'random' needs the target config's 'encoder' (or another "
                              "candidate) to know which encoder to initialise")
        torch.manual_seed(0)
        return build_encoder(host, fallback)
    return load_model(candidate, host).encoder


def _label(candidate: str | EncoderChoice) -> str:
    if isinstance(candidate, EncoderChoice):
        return f"{candidate.name}:{candidate.preset}" + (f"@{candidate.weights.path}" if candidate.weights else "")
    return candidate


@torch.no_grad()
def _features(encoder: Any, batches: list[dict[str, Any]], where: str) -> np.ndarray:
    encoder.eval()
    out = []
    for batch in batches:
        try:
            features = encoder(batch)
        except DomainfmError as exc:
            raise DomainfmError(f"candidate {where} cannot encode the target data: {exc}") from None
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DomainfmError(f"candidate {where} cannot encode the target data "
                                f"({type(exc).__name__}: {first})") from None
        embedding = features.get("embedding") if isinstance(features, dict) else None
        if not torch.is_tensor(embedding) or embedding.ndim != 2:
            raise DomainfmError(f"candidate {where}: its encoder gives no (batch, dim) 'embedding'")
        out.append(embedding.float().cpu().numpy())
    return np.concatenate(out)


def rank(config: Any, candidates: Sequence[str | dict[str, Any]], *, output: str | os.PathLike[str] | None = None,
         max_samples: int = 2048, overrides: Sequence[str] = (), host: Host | None = None) -> Ranking:
    """Rank ``candidates`` for the target dataset of ``config`` (its ``data``, and its
    ``encoder`` for the ``random`` baseline); writes ``ranking.csv``, ``ranking.md`` and
    ``ranking.png`` under ``output`` (default: the config's ``output_dir``)."""
    if not candidates:
        raise ConfigError("rank needs at least one candidate (an export or run folder, an encoder "
                          "section with weights, or 'random')")
    host = host or Host()
    parsed = [parse_candidate(c) for c in candidates]
    config = load_config(config, tuple(overrides))
    if config.encoder is None and config.init is None:  # the encoder of the first saved candidate
        saved = [c for c in parsed if isinstance(c, str) and c != RANDOM]
        config = config.replace(init=saved[0]) if saved else config
    session = Session.open("finetune", config, (), host)  # reads and checks the target data
    started = time.perf_counter()
    batches, targets, seen = [], [], 0
    for batch in _whole_split(session.datamodule.train_dataloader()):
        batches.append(batch)
        targets.append(batch["target"])
        seen += int(batch["target"].shape[0])
        if seen >= max_samples:
            break
    data = session.spec.data
    y, classification = summarise_targets(targets, data.num_classes, data.task.get("ignore_index"))
    rows = []
    for candidate in parsed:
        begun = time.perf_counter()
        where = repr(_label(candidate))
        features = _features(_encoder(host, candidate, session.spec.encoder), batches, where)
        rows.append({"candidate": _label(candidate), "logme": logme(features, y, classification),
                     "probe": probe_score(features, y, classification, seed=session.config.seed),
                     "dim": features.shape[1], "seconds": time.perf_counter() - begun})
    rows.sort(key=lambda r: -r["logme"])
    result = Ranking(rows, time.perf_counter() - started, len(y))
    folder = Path(output) if output is not None else Path(session.config.output_dir)
    result.files = _write(result, folder, session.config.data.name)
    return result


def _whole_split(loader: Any) -> Any:
    """The loader's dataset in order, every sample (no shuffling, no dropped last batch)."""
    from torch.utils.data import DataLoader, IterableDataset

    if isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset):
        return DataLoader(loader.dataset, batch_size=loader.batch_size or 1, shuffle=False,
                          collate_fn=loader.collate_fn, drop_last=False)
    return loader


def _write(result: Ranking, folder: Path, dataset: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from domainfm.io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    csv = "candidate,logme,linear_probe,features,seconds\n" + "".join(
        f"{r['candidate']},{r['logme']:.6f},{r['probe']:.6f},{r['dim']},{r['seconds']:.3f}\n"
        for r in result.rows)
    atomic_write_text(folder / "ranking.csv", csv)
    atomic_write_text(folder / "ranking.md", f"Ranking on `{dataset}` ({result.samples} training "
                      f"samples, {result.seconds:.1f} s)\n\n{result.table()}\n")
    names = [Path(r["candidate"]).name or r["candidate"] for r in result.rows][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 1.5), sharey=True)
    for ax, key, title in zip(axes, ("logme", "probe"), ("LogME (higher is better)",
                                                          "linear probe, held out")):
        ax.barh(names, [r[key] for r in result.rows][::-1], color="C0")
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"candidates for {dataset}", fontsize=10)
    fig.tight_layout()
    with atomic_path(folder / "ranking.png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return [folder / "ranking.csv", folder / "ranking.md", folder / "ranking.png"]


__all__ = ["Ranking", "parse_candidate", "rank"]
