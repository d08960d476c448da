"""A model rebuilt from its specification; saving it as an export folder and loading it back.

A :class:`Model` is its parts (encoder, optional head and objective) plus the
:class:`~domainfm.spec.ModelSpec` that built them. Loading reads a source with
:func:`domainfm.weights.read_checkpoint`, builds the parts from the stored specification,
restores the adapters' structure through the adapter hooks and loads every tensor strictly.
An export folder is written in the layout model hubs use: ``config.json`` (the specification,
the format and the run's final metrics as ``results``), ``model.safetensors`` (weights prefixed
``encoder.``, ``head.``, ``objective.``) and a ``README.md`` model card; it is written under a
temporary name and renamed, so a crash never leaves half an export.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domainfm.components import build_encoder, build_with_encoder
from domainfm.errors import DomainfmError, WeightsError
from domainfm.host import Host, _version
from domainfm.spec import AdapterSpec, ModelSpec
from domainfm.weights import EXPORT_FORMAT, EXPORT_VERSION, Checkpoint, load_strict, read_checkpoint

PARTS = ("encoder", "head", "objective")


@dataclass
class Model:
    """Encoder, optional head and objective, and the specification that built them."""

    encoder: nn.Module
    head: nn.Module | None
    objective: nn.Module | None
    spec: ModelSpec
    path: Path | None = None

    def parts(self) -> dict[str, nn.Module | None]:
        return {"encoder": self.encoder, "head": self.head, "objective": self.objective}

    def eval(self) -> Model:
        for part in self.parts().values():
            if part is not None:
                part.eval()
        return self

    def __call__(self, batch: dict[str, Any]) -> Any:
        """Head predictions for a batch (or the encoder's features when there is no head)."""
        features = self.encoder(batch)
        return self.head(features, batch) if self.head is not None else features

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every part's tensors, prefixed by the part's name, detached on the CPU."""
        tensors = {}
        for prefix, module in self.parts().items():
            for key, value in (module.state_dict() if module is not None else {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{prefix}.{key}"] = value.detach().cpu().contiguous().clone()
        return tensors


def call_adapter_hook(host: Host, hook: str, encoder: nn.Module, adapter: AdapterSpec) -> None:
    """Run one adapter hook; exactly one plugin must provide the adapter."""
    answers = [r for r in getattr(host.hook, hook)(encoder=encoder, adapter=adapter) if r]
    if not answers:
        raise DomainfmError(f"no installed plugin provides the adapter {adapter.name!r} "
                            "(built in: lora, linear_probe)")


def build_model(host: Host, spec: ModelSpec, parts: tuple[str, ...] = PARTS) -> Model:
    """The parts of ``spec`` with fresh weights, adapters' structure restored."""
    encoder = build_encoder(host, spec.encoder)
    for adapter in spec.adapters:
        call_adapter_hook(host, "domainfm_restore_adapter", encoder, adapter)
    built: dict[str, nn.Module | None] = {"head": None, "objective": None}
    for part in ("head", "objective"):
        part_spec = getattr(spec, part)
        if part in parts and part_spec is not None:
            built[part] = build_with_encoder(host, part, part_spec, encoder)
    return Model(encoder, built["head"], built["objective"], spec)


def load_model(source: str | os.PathLike[str] | Checkpoint, host: Host) -> Model:
    """Rebuild a model from an export folder, a run folder or a Lightning checkpoint."""
    checkpoint = source if isinstance(source, Checkpoint) else read_checkpoint(Path(source))
    if checkpoint.spec is None:
        raise WeightsError(f"{checkpoint.path} holds weights but no domainfm model "
                           "specification; name it as a component's `weights` instead")
    model = build_model(host, checkpoint.spec)
    for part, module in model.parts().items():
        if module is not None:
            load_strict(module, checkpoint.part(part), f"{checkpoint.path} ({part})")
    model.path = checkpoint.path
    return model.eval()


# --------------------------------------------------------------------------- export


def merged_copy(model: Model, host: Host) -> Model:
    """A copy whose adapters are folded into plain weights (those that can be)."""
    if not model.spec.adapters:
        return model
    encoder = copy.deepcopy(model.encoder)
    kept, merged = [], list(model.spec.provenance.merged_adapters)
    for adapter in model.spec.adapters:
        answers = [r for r in host.hook.domainfm_merge_adapter(encoder=encoder, adapter=adapter) if r]
        (merged if answers else kept).append(adapter)
    spec = model.spec.replace(adapters=tuple(kept),
                              provenance=replace(model.spec.provenance, merged_adapters=tuple(merged)))
    return Model(encoder, model.head, model.objective, spec, model.path)


def export_config(spec: ModelSpec, results: dict[str, float]) -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, **spec.to_dict(),
            "results": results}


def write_export(model: Model, destination: str | os.PathLike[str], host: Host, *,
                 results: dict[str, float] | None = None, merge_adapters: bool = True,
                 overwrite: bool = False) -> Path:
    """Write an export folder atomically: built in a temporary folder, then renamed."""
    from safetensors.torch import save_file

    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise DomainfmError(f"export folder {str(destination)!r} already exists (use overwrite)")
    if merge_adapters:
        model = merged_copy(model, host)
    info = host.plugin_of(model.spec.encoder.name)
    provenance = replace(model.spec.provenance, domainfm_version=_version("domainfm"),
                         plugin={"name": info.name, "distribution": info.distribution,
                                 "version": info.version},
                         created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    config = export_config(model.spec.replace(provenance=provenance), dict(results or {}))
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        save_file(model.state_dict(), staging / "model.safetensors", metadata={"format": EXPORT_FORMAT})
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


def model_card(config: dict[str, Any], sections: list[str]) -> str:
    """A Hugging Face style README: what the model is, how it was trained, how to load it."""
    enc, prov = config["encoder"], config["provenance"]
    plugin = prov.get("plugin") or {}
    data = prov.get("data") or {}
    run = prov.get("run_config") or {}
    lines = [
        f"# {enc['name']} ({enc.get('preset') or ''})", "",
        f"Exported by domainfm {prov['domainfm_version']} from plugin `{plugin.get('name')}` "
        f"({plugin.get('distribution')} {plugin.get('version')}) on {prov['created']}.", "",
        "## Training",
        f"- stage: {prov.get('stage')}",
        f"- data: `{data.get('name')}` {json.dumps(data.get('params', {}))}",
    ]
    if config.get("objective"):
        lines.append(f"- pretraining objective: `{config['objective']['name']}`")
    if config.get("head"):
        lines.append(f"- head: `{config['head']['name']}`")
    adapters = [a["name"] for a in config.get("adapters") or []]
    adapters += [f"{a['name']} (merged)" for a in prov.get("merged_adapters") or []]
    if adapters:
        lines.append(f"- adapters: {', '.join(adapters)}")
    if prov.get("parent"):
        lines.append(f"- initialised from: `{prov['parent']}`")
    for part, path in sorted((prov.get("weights") or {}).items()):
        lines.append(f"- {part} weights first read from: `{path}`")
    optim = run.get("optim") or {}
    if optim:
        lines.append(f"- optimiser: AdamW lr {optim.get('lr')}, weight decay "
                     f"{optim.get('weight_decay')}, {optim.get('schedule')} schedule")
    inputs = (config.get("data") or {}).get("inputs") or []
    if inputs:
        lines.append(f"- inputs: {', '.join(map(str, inputs))}")
    soup = prov.get("soup") or {}
    if soup:
        lines += ["", "## Soup",
                  f"A {soup.get('method')} soup: the weights of {sum(i['used'] for i in soup['ingredients'])} "
                  f"of {len(soup['ingredients'])} fine-tuned models averaged"
                  + (f", each kept only if `{soup['metric']}` on the validation split did not drop."
                     if soup.get("method") == "greedy" else ".")]
        lines += [f"- {'used' if i['used'] else 'left out'}: `{i['source']}`"
                  + (f" ({soup['metric']} {i['score']:.4g})" if i.get("score") is not None else "")
                  for i in soup["ingredients"]]
    lines += ["", "## Metrics"]
    results = config.get("results") or {}
    lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
              for k, v in sorted(results.items())] or ["- none recorded"]
    lines += ["", "## Use", "```python", "import domainfm",
              "model = domainfm.load_model('path/to/this/folder')  # encoder, head, objective",
              "encoder = domainfm.load_encoder('path/to/this/folder')", "```"]
    return "\n".join(lines + [""] + [s.strip() + "\n" for s in sections])


__all__ = ["Model", "build_model", "call_adapter_hook", "load_model", "merged_copy", "model_card",
           "write_export"]
