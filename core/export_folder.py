"""Export folders (``config.json`` + ``model.safetensors`` + ``README.md``) and loading them back.

An export holds everything needed to rebuild the model from the folder alone, given the plugin
is installed: component names, presets and parameters in ``config.json``; weights, prefixed
``encoder.``/``head.``/``objective.``, in safetensors. Weights are only ever read from
safetensors or with ``torch.load(weights_only=True)``: no pickled code runs on load.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from domainfm.config import Component, EncoderChoice
from domainfm.host import DomainfmError, Host, _version, get_host
from domainfm.engine.lora import has_lora, inject_lora, merge_lora

FORMAT = "domainfm-export"
FORMAT_VERSION = 1
PARTS = ("encoder", "head", "objective")


class ExportError(DomainfmError):
    pass


@dataclass
class ExportedModel:
    """A model rebuilt from an export folder: encoder, optional head and objective."""

    encoder: nn.Module
    head: nn.Module | None
    objective: nn.Module | None
    config: dict[str, Any]
    path: Path

    def eval(self) -> ExportedModel:
        for part in (self.encoder, self.head, self.objective):
            if part is not None:
                part.eval()
        return self

    def __call__(self, batch: dict[str, Any]) -> Any:
        """Head predictions for a batch (or the encoder's features when there is no head)."""
        features = self.encoder(batch)
        return self.head(features, batch) if self.head is not None else features


# --------------------------------------------------------------------------- writing


def state_dict_of(parts: dict[str, nn.Module | None]) -> dict[str, torch.Tensor]:
    tensors = {}
    for prefix, module in parts.items():
        if module is None:
            continue
        for key, value in module.state_dict().items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{key}"] = value.detach().cpu().contiguous().clone()
    return tensors


def write_export(destination: str | os.PathLike[str], *, encoder: nn.Module,
                 head: nn.Module | None, objective: nn.Module | None, config: dict[str, Any],
                 metrics: dict[str, float] | None = None, merge_adapters: bool = True,
                 overwrite: bool = False, host: Host | None = None) -> Path:
    """Write an export folder atomically: built in a temporary folder, then renamed."""
    host = host or get_host()
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise ExportError(f"export folder {str(destination)!r} already exists (use overwrite)")
    config = dict(config)
    if has_lora(encoder):
        lora = config.get("lora") or {}
        config["lora_export"] = {"rank": lora.get("rank"), "alpha": lora.get("alpha"),
                                 "merged": merge_adapters}
        if merge_adapters:
            encoder = _merged_copy(encoder)
    plugin = host.plugin_of(config["encoder"]["name"])
    config.update(
        format=FORMAT, format_version=FORMAT_VERSION,
        domainfm_version=_version("domainfm"),
        plugin=plugin.name, plugin_distribution=plugin.distribution,
        plugin_version=plugin.version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        metrics=metrics or config.get("metrics_final") or {},
    )
    config.pop("metrics_final", None)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        save_file(state_dict_of({"encoder": encoder, "head": head, "objective": objective}),
                  staging / "model.safetensors", metadata={"format": FORMAT})
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str))
        sections = [s for s in host.hook.domainfm_on_export(config=config, directory=staging) if s]
        (staging / "README.md").write_text(model_card(config, sections))
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return destination


def _merged_copy(encoder: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(encoder)
    merge_lora(clone)
    return clone


def model_card(config: dict[str, Any], sections: list[str]) -> str:
    """A Hugging Face style README: what the model is, how it was trained, how to load it."""
    enc = config["encoder"]
    lines = [
        f"# {enc['name']} ({enc.get('preset', '')})", "",
        f"Exported by domainfm {config['domainfm_version']} from plugin `{config['plugin']}` "
        f"({config['plugin_distribution']} {config['plugin_version']}) on {config['created']}.", "",
        "## Training",
        f"- stage: {config.get('stage')}",
        f"- data: `{(config.get('data') or {}).get('name')}` {json.dumps((config.get('data') or {}).get('params', {}))}",
    ]
    if config.get("objective"):
        lines.append(f"- pretraining objective: `{config['objective']['name']}`")
    if config.get("head"):
        lines.append(f"- head: `{config['head']['name']}` (mode {config.get('mode')})")
    if config.get("init"):
        lines.append(f"- initialised from: `{config['init']}`")
    optim = config.get("optim") or {}
    if optim:
        lines.append(f"- optimiser: AdamW lr {optim.get('lr')}, weight decay "
                     f"{optim.get('weight_decay')}, {optim.get('schedule')} schedule")
    lines += ["", "## Metrics"]
    metrics = config.get("metrics") or {}
    lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
              for k, v in sorted(metrics.items())] or ["- none recorded"]
    lines += ["", "## Use", "```python", "import domainfm",
              "model = domainfm.load_model('path/to/this/folder')  # encoder, head, objective",
              "encoder = domainfm.load_encoder('path/to/this/folder')", "```"]
    return "\n".join(lines + [""] + [s.strip() + "\n" for s in sections])


# --------------------------------------------------------------------------- reading


def read_export_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    folder = Path(path)
    if not folder.is_dir():
        raise ExportError(f"export folder {str(folder)!r} does not exist")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ExportError(f"{str(folder)!r} is not a domainfm export: config.json is missing")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{config_file} is not valid JSON ({exc})") from None
    if config.get("format") != FORMAT or "encoder" not in config:
        raise ExportError(f"{config_file} is not a domainfm export config (no 'format': {FORMAT!r})")
    if not (folder / "model.safetensors").is_file():
        raise ExportError(f"{str(folder)!r} is incomplete: model.safetensors is missing")
    return config


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ExportError(f"{path} is unreadable (truncated or corrupt?): {exc}") from None


# Build parameters named ``init...`` or ``weights...`` only say where a part's first weights
# come from (a pretraining run, a released checkpoint and its band list). The saved tensors
# replace those weights, so rebuilding from a saved model leaves them out: the source may be
# gone, and reading it again would only be overwritten.
INIT_PARAM_PREFIXES = ("init", "weights")


def _build_params(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (spec.get("params") or {}).items()
            if not k.startswith(INIT_PARAM_PREFIXES)}


def load_parts(config: dict[str, Any], tensors: dict[str, torch.Tensor], host: Host,
               where: str, parts: tuple[str, ...] = PARTS) -> dict[str, nn.Module | None]:
    """Rebuild encoder/head/objective from a config dict and load their weights strictly."""
    from domainfm.components import build_encoder, build_with_encoder

    enc = config["encoder"]
    encoder = build_encoder(host, EncoderChoice(enc["name"], _build_params(enc),
                                                enc.get("preset", "tiny")))
    lora = config.get("lora_export")
    if lora and not lora.get("merged"):
        cfg = config.get("lora") or {}
        inject_lora(encoder, cfg.get("rank", 8), cfg.get("alpha", 16.0), 0.0, cfg.get("targets") or [])
    built: dict[str, nn.Module | None] = {"encoder": encoder, "head": None, "objective": None}
    for part in ("head", "objective"):
        spec = config.get(part)
        if part in parts and spec:  # stateless parts (no tensors) are rebuilt too
            built[part] = build_with_encoder(host, part, Component(spec["name"], _build_params(spec)),
                                             encoder)
    for part, module in built.items():
        if module is not None:
            load_strict(module, {k[len(part) + 1:]: v for k, v in tensors.items()
                                 if k.startswith(part + ".")}, f"{where} ({part})")
    return built


def load_strict(module: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load a state dict, failing with every missing, unexpected and mis-shaped key named."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(tensors) & set(expected))
                  if tensors[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        if mismatched:
            problems.append("shape mismatch: " + "; ".join(mismatched[:10]))
        if missing:
            problems.append(f"missing keys: {missing[:10]}")
        if unexpected:
            problems.append(f"unexpected keys: {unexpected[:10]}")
        raise ExportError(f"weights in {where} do not match the model built from the config: "
                          + " | ".join(problems))
    module.load_state_dict(tensors, strict=True)
