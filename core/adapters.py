"""Built-in plugin: the ``lora`` and ``linear_probe`` adapters, on the hooks any third party uses.

``lora`` wraps the encoder's ``nn.Linear`` layers (all, or those whose names match
``targets``) in low-rank adapters and freezes the rest (:mod:`domainfm.engine.lora`);
``linear_probe`` freezes the whole encoder, which the engine then runs in eval mode without
gradients. Nothing heavy is imported until an adapter is applied, so listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

from domainfm.hookspecs import hookimpl


def _lora_args(params: dict[str, Any]) -> tuple[int, float, float, list[str]]:
    return (int(params.get("rank", 8)), float(params.get("alpha", 16.0)),
            float(params.get("dropout", 0.0)), list(params.get("targets") or []))


@hookimpl
def domainfm_adapt_encoder(encoder: Any, adapter: Any) -> bool | None:
    if adapter.name == "lora":
        from domainfm.engine.lora import inject_lora

        inject_lora(encoder, *_lora_args(dict(adapter.params)))
        return True
    if adapter.name == "linear_probe":
        encoder.requires_grad_(False)
        return True
    return None


@hookimpl
def domainfm_restore_adapter(encoder: Any, adapter: Any) -> bool | None:
    if adapter.name == "lora":
        from domainfm.engine.lora import inject_lora

        rank, alpha, _, targets = _lora_args(dict(adapter.params))
        inject_lora(encoder, rank, alpha, 0.0, targets)
        return True
    return True if adapter.name == "linear_probe" else None


@hookimpl
def domainfm_merge_adapter(encoder: Any, adapter: Any) -> bool | None:
    if adapter.name == "lora":
        from domainfm.engine.lora import merge_lora

        merge_lora(encoder)
        return True
    return True if adapter.name == "linear_probe" else None  # frozen weights are plain weights


@hookimpl
def domainfm_on_export(config: dict[str, Any], directory: Any) -> str | None:
    kept = config.get("adapters") or []
    merged = (config.get("provenance") or {}).get("merged_adapters") or []
    lora = next((a for a in [*kept, *merged] if a.get("name") == "lora"), None)
    if lora is None:
        return None
    params = lora.get("params") or {}
    state = "kept as separate adapters" if lora in kept else "merged into the base weights"
    return (f"## LoRA\nFine-tuned with LoRA (rank {params.get('rank')}, alpha "
            f"{params.get('alpha')}); the adapters are {state}.")
