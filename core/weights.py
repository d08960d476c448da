"""The one weights reader of domainfm, and strict loading with one key-difference error.

:func:`read_checkpoint` reads every source a model or a part's first weights can come from:

* an **export folder**: ``config.json`` (format ``domainfm-export``) + ``model.safetensors``;
* a **run folder**: its ``checkpoints/best.ckpt`` when the run kept its best validation
  checkpoint (``trainer.checkpoint_monitor``), else ``checkpoints/last.ckpt``;
* a **Lightning checkpoint** ``.ckpt`` (its ``domainfm`` entry holds the model specification);
* a **Hugging Face folder**: ``model.safetensors`` or ``pytorch_model.bin`` beside ``config.json``;
* a single ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` file.

Weights are read only from safetensors or with ``torch.load(weights_only=True)``: no pickled
code ever runs. A state dict wrapped as ``{"state_dict": ...}`` or ``{"model": ...}`` is
unwrapped. Plugins never read files: they map an official layout's keys to their modules' keys
(``weights`` on a record), and :func:`load_part_weights` loads the result strictly, so a
checkpoint can never silently leave a model random. Plugins may call :func:`read_checkpoint` and
:func:`load_strict` themselves only where a model's architecture must be read from a
checkpoint's tensors before the model can be built (any granite TTM revision, say).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from domainfm.errors import WeightsError
from domainfm.spec import ModelSpec

EXPORT_FORMAT = "domainfm-export"
EXPORT_VERSION = 2
RUN_CHECKPOINT = Path("checkpoints") / "last.ckpt"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WRAPPERS = ("state_dict", "model", "module", "net")

Kind = Literal["export", "run", "lightning", "huggingface", "file"]


@dataclass
class Checkpoint:
    """Tensors read from a source, with the model specification when domainfm wrote it."""

    path: Path
    kind: Kind
    tensors: dict[str, torch.Tensor]
    spec: ModelSpec | None = None
    config: dict[str, Any] | None = None  # a Hugging Face folder's config.json
    results: dict[str, float] = field(default_factory=dict)  # final metrics of the run

    def part(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors of one part (``encoder``, ``head``, ``objective``), prefix removed."""
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def read_checkpoint(source: str | Path) -> Checkpoint:
    """Read any supported source (see the module docstring); errors name the path."""
    path = Path(source)
    if path.is_dir():
        if (path / "config.json").is_file() and _is_export(path / "config.json"):
            return _read_export(path)
        best = path / RUN_CHECKPOINT.parent / "best.ckpt"
        if (path / RUN_CHECKPOINT).is_file():
            checkpoint = _read_lightning(best if best.is_file() else path / RUN_CHECKPOINT)
            checkpoint.kind, checkpoint.path = "run", path
            checkpoint.results = _run_results(path)
            return checkpoint
        found = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
        if found:
            config = _json(path / "config.json") if (path / "config.json").is_file() else None
            return Checkpoint(path, "huggingface", _read_file(found[0]), config=config)
        raise WeightsError(f"{str(path)!r} is neither an export folder (config.json + "
                           "model.safetensors), a run folder (checkpoints/last.ckpt) nor a "
                           f"Hugging Face folder ({' or '.join(WEIGHT_FILES)})")
    if not path.is_file():
        raise WeightsError(f"{str(path)!r} is neither an export folder, a run folder nor a "
                           "checkpoint file: it does not exist")
    if path.suffix == ".ckpt":
        return _read_lightning(path)
    return Checkpoint(path, "file", _read_file(path))


def _is_export(config: Path) -> bool:
    raw = _json(config)
    return isinstance(raw, dict) and raw.get("format") == EXPORT_FORMAT


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc})") from None


def _read_export(folder: Path) -> Checkpoint:
    raw = _json(folder / "config.json")
    if raw.get("format_version") != EXPORT_VERSION:
        raise WeightsError(f"{folder / 'config.json'} is export format version "
                           f"{raw.get('format_version')}; this domainfm reads version "
                           f"{EXPORT_VERSION} (export the run again)")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise WeightsError(f"{str(folder)!r} is incomplete: model.safetensors is missing")
    body = {k: v for k, v in raw.items() if k not in ("format", "format_version", "results")}
    spec = ModelSpec.from_dict(body, f"{folder / 'config.json'}")
    return Checkpoint(folder, "export", _read_file(weights), spec=spec,
                      results=dict(raw.get("results") or {}))


def _read_lightning(path: Path) -> Checkpoint:
    state = _torch_load(path)
    info = state.get("domainfm") if isinstance(state, dict) else None
    if not isinstance(info, dict) or "spec" not in info:
        raise WeightsError(f"{str(path)!r} is not a domainfm checkpoint (no 'domainfm' entry "
                           "with a model specification)")
    spec = ModelSpec.from_dict(info["spec"], f"{path} (model specification)")
    return Checkpoint(path, "lightning", _unwrap(state, path), spec=spec)


def _run_results(run_dir: Path) -> dict[str, float]:
    """The run's final metrics, and the best monitored value when the run kept a best checkpoint
    (the model a run folder then stands for)."""
    summary = run_dir / "metrics.json"
    if not summary.is_file():
        return {}
    raw = _json(summary) or {}
    results = dict(raw.get("final") or {})
    best = raw.get("best")
    if best:
        results[f"best {best['monitor']}"] = best["score"]
    return results


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is unreadable (truncated or corrupt?): {exc}") from None
    return _unwrap(_torch_load(path), path)


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is unreadable (truncated, corrupt, or holds pickled code "
                           f"that weights_only loading refuses): {first}") from None


def _unwrap(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """The flat tensor dict inside ``{"state_dict": ...}``-style wrappers."""
    while isinstance(state, Mapping) and not any(torch.is_tensor(v) for v in state.values()):
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    tensors = {k: v for k, v in state.items() if torch.is_tensor(v)} if isinstance(state, Mapping) else {}
    if not tensors:
        raise WeightsError(f"{path} holds no state dict of tensors")
    return tensors


# --------------------------------------------------------------------------- loading


def key_difference(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    """Every mis-shaped, missing and unexpected key; empty when ``given`` fits exactly."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = [f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(given) & set(expected)) if given[k].shape != expected[k].shape]
    problems = []
    if mismatched:
        problems.append(f"shape mismatch ({len(mismatched)}): " + "; ".join(mismatched[:10]))
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:10]}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:10]}")
    return " | ".join(problems)


def load_strict(module: nn.Module, tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Load ``tensors`` into ``module``, failing with every missing, unexpected and mis-shaped key."""
    problems = key_difference(module.state_dict(), tensors)
    if problems:
        raise WeightsError(f"weights in {where} do not match the model built from the "
                           f"specification: {problems}")
    module.load_state_dict(dict(tensors), strict=True)


def load_part_weights(module: nn.Module, part: str, layouts: Mapping[str, Callable[..., Any]],
                      source: str | Path | Checkpoint, layout: str | None = None,
                      params: Mapping[str, Any] | None = None) -> None:
    """Load a part's first weights from ``source`` (a path, or a checkpoint already read) strictly.

    Without ``layout``, a domainfm run or export gives the tensors of the part of the same name;
    any other source (or a domainfm source without that part) goes through the first of the
    record's ``layouts``, whose filter maps the file's keys to the module's.
    """
    checkpoint = source if isinstance(source, Checkpoint) else read_checkpoint(source)
    path = str(checkpoint.path)
    if layout is None and checkpoint.spec is not None and checkpoint.part(part):
        if part == "encoder" and checkpoint.spec.adapters:
            names = ", ".join(a.name for a in checkpoint.spec.adapters)
            raise WeightsError(f"{path} holds an encoder adapted with {names}: export it "
                               "(merging the adapters) before starting from it")
        load_strict(module, checkpoint.part(part), f"{path} ({part})")
        return
    if layout is None:
        if not layouts:
            raise WeightsError(f"{path} is not a domainfm run or export with {part} weights, and "
                               f"this {part} maps no official checkpoint layout")
        layout = next(iter(layouts))
    if layout not in layouts:
        from domainfm.schema import did_you_mean

        raise WeightsError(f"unknown weights layout {layout!r} for this {part}."
                           f"{did_you_mean(layout, layouts)}")
    mapping = layouts[layout]
    extra = dict(params or {})
    if "config" in inspect.signature(mapping).parameters:
        extra.setdefault("config", checkpoint.config or {})
    try:
        tensors = mapping(checkpoint.tensors, module, **extra)
    except WeightsError:
        raise
    except (KeyError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path} does not fit the {layout!r} layout of this {part}: {exc}") from None
    load_strict(module, tensors, f"{path} ({layout} layout)")


__all__ = ["Checkpoint", "EXPORT_FORMAT", "EXPORT_VERSION", "key_difference", "load_part_weights",
           "load_strict", "read_checkpoint"]
