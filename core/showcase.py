"""``domainfm demo``: pretrain -> fine-tune -> evaluate every installed plugin on its own data.

For each plugin, the demo pretrains the encoder of its first labelled dataset with the default
objective, fine-tunes a head from that encoder and from random initialisation with the same
seed and budget, evaluates both on the test split and prints one summary table. Each dataset's
``demo`` record field sets the data size and step budgets, so the whole demo stays within a
few minutes on two CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from domainfm.errors import DomainfmError
from domainfm.host import DISABLE_ENV, Host
from domainfm.io import atomic_write_text
from domainfm.records import DatasetRecord


def demo_pairs(host: Host, plugins: list[str] | None = None) -> list[DatasetRecord]:
    """One labelled dataset per plugin: the first with ``demo`` settings, else the first."""
    chosen: dict[str, DatasetRecord] = {}
    labelled = [r for r in host.components("dataset") if r.default_head
                and (plugins is None or r.plugin in plugins)]
    for record in sorted(labelled, key=lambda r: not r.demo):
        chosen.setdefault(record.plugin, record)
    return [chosen[name] for name in sorted(chosen)]


def _run_config(data: DatasetRecord, encoder: str, out: Path, name: str, steps: int,
                params: dict[str, Any], optim: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {"name": data.name, "params": params},
        "encoder": {"name": encoder, "preset": "tiny"},
        "output_dir": str(out / name),
        "seed": 0,
        "trainer": {"max_steps": steps, "enable_progress_bar": False, "log_every_n_steps": 5,
                    "limit_val_batches": 2, "val_check_interval": None},
        "optim": {"warmup": 0.1, **optim},
    }


def check_requested(host: Host, plugins: list[str] | None) -> None:
    """Every plugin asked for is installed, enabled and working."""
    for name in plugins or ():
        info = host.plugins.get(name)
        if info is None:
            raise DomainfmError(f"plugin {name!r} is not installed. Installed: "
                                f"{', '.join(sorted(host.plugins))}")
        if info.status == "disabled":
            raise DomainfmError(f"plugin {name!r} is disabled (--disable-plugin or ${DISABLE_ENV})")
        if info.status == "broken":
            raise DomainfmError(f"plugin {name!r} is broken: {info.error}")


def demo_plugin(host: Host, data: DatasetRecord, out: Path) -> dict[str, Any]:
    """Pretrain, fine-tune (pretrained and from scratch) and evaluate one plugin."""
    import domainfm

    settings = dict(data.demo)
    encoder_name = data.default_encoder or next(
        r.name for r in host.components("encoder") if r.plugin == data.plugin)
    encoder = host.get("encoder", encoder_name)
    pretrain_data = host.get("dataset", encoder.default_dataset or data.name)
    pretrain_settings = dict(pretrain_data.demo)
    lr = float(settings.get("lr", 1e-3))
    started = time.perf_counter()
    pre = domainfm.pretrain(host=host, config=_run_config(
        pretrain_data, encoder_name, out / data.plugin, "pretrain",
        int(pretrain_settings.get("pretrain_steps", 100)),
        dict(pretrain_settings.get("params", pretrain_data.tiny_params)),
        {"lr": lr, **pretrain_settings.get("pretrain_optim", {})}))
    few = dict(settings.get("finetune_params", settings.get("params", data.tiny_params)))
    scores = {}
    for name, init in (("scratch", None), ("pretrained", str(pre.run_dir))):
        config = _run_config(data, encoder_name, out / data.plugin, f"finetune-{name}",
                             int(settings.get("finetune_steps", 50)), few,
                             {"lr": lr, **settings.get("finetune_optim", {})})
        config["init"] = init
        tuned = domainfm.finetune(config, host=host)
        evaluation = domainfm.evaluate({
            "data": config["data"], "init": str(tuned.run_dir), "seed": 0,
            "output_dir": str(out / data.plugin / f"evaluate-{name}"),
            "trainer": {"enable_progress_bar": False},
        }, host=host)
        scores[name] = evaluation.metrics
    metric = data.default_metrics[0].split(".", 1)[1] if data.default_metrics else "loss"
    key = f"test/{metric}" if data.default_metrics else "test_loss"
    losses = pre.history.get("train_loss") or [(0, float("nan"))]
    return {
        "plugin": data.plugin, "data": data.name, "encoder": encoder_name,
        "pretrain_loss": (losses[0][1], losses[-1][1]), "metric": metric,
        "scratch": scores["scratch"].get(key, float("nan")),
        "pretrained": scores["pretrained"].get(key, float("nan")),
        "seconds": time.perf_counter() - started,
    }


def summary_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| plugin | data | pretraining loss first -> last | metric | from scratch | pretrained | time |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['plugin']} | {r['data']} | failed: {r['error']} | | | | |")
            continue
        first, last = r["pretrain_loss"]
        lines.append(f"| {r['plugin']} | {r['data']} | {first:.4f} -> {last:.4f} | {r['metric']} | "
                     f"{r['scratch']:.4f} | {r['pretrained']:.4f} | {r['seconds']:.0f} s |")
    return "\n".join(lines)


def demo(plugins: list[str] | None = None, output: str | Path = "demo_runs",
         host: Host | None = None) -> list[dict[str, Any]]:
    """Run the demo for every installed plugin (or those named) and print the summary table."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    host = host or Host()
    check_requested(host, plugins)
    out = Path(output)
    rows = []
    for data in demo_pairs(host, plugins):
        print(f"== {data.plugin}: pretrain -> fine-tune -> evaluate on {data.name}", flush=True)
        try:
            rows.append(demo_plugin(host, data, out))
        except DomainfmError as exc:  # one plugin's failure does not hide the others' results
            rows.append({"plugin": data.plugin, "data": data.name, "error": str(exc)})
    table = summary_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.md", table + "\n")
    print("\n" + table)
    broken = [i for i in host.plugins.values() if i.status == "broken"]
    for info in broken:
        print(f"(plugin {info.name} is broken and was skipped: {info.error})")
    return rows
