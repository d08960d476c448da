"""Built-in plugin: LoRA, through the same hooks any third party would use.

The adapters themselves live in :mod:`domainfm.engine.lora`; this module only implements the
hooks, and imports nothing heavy so listing plugins stays fast.
"""

from __future__ import annotations

from typing import Any

from domainfm.hookspecs import hookimpl


@hookimpl
def domainfm_adapt_encoder(encoder: Any, config: Any) -> None:
    if config.mode == "lora":
        from domainfm.engine.lora import inject_lora

        lora = config.lora
        inject_lora(encoder, lora.rank, lora.alpha, lora.dropout, lora.targets)


@hookimpl
def domainfm_on_export(config: dict[str, Any], directory: Any) -> str | None:
    lora = config.get("lora_export")
    if not lora:
        return None
    state = "merged into the base weights" if lora.get("merged") else "kept as separate adapters"
    return (f"## LoRA\nFine-tuned with LoRA (rank {lora['rank']}, alpha {lora['alpha']}); "
            f"the adapters are {state}.")
