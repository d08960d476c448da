"""Does ``domainfm rank`` predict fine-tuning results, and do soups beat the best single run?

For each plugin named (default: every installed plugin with a labelled demo dataset), on that
dataset's demo sizes and budgets (its record's ``demo`` settings, so no plugin is named here):

1. Candidates: the encoder pretrained for several budgets (fractions of the demo's pretraining
   steps) plus random initialisation. ``domainfm.rank`` scores each on the target's training
   split; each is then fine-tuned with one fixed recipe (the demo's) and evaluated on the test
   split. Reported: Kendall's tau between the LogME score (and the probe score) and the test
   metric, and the time of ranking all candidates against one fine-tuning run.
2. Soups: fine-tunes of the best-budget encoder with different seeds and learning rates;
   ``domainfm.soup`` uniform and greedy (greedy chooses on the validation split) against the
   best single run, all on the test split.

Everything goes through the public API (``pretrain``, ``finetune``, ``evaluate``, ``rank``,
``soup``); nothing trains outside the engine.

    python bench/rank_and_soup.py [--plugin NAME ...] [--budgets 0.125 0.5 1 2] [--soup 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, write_section  # noqa: E402

import domainfm  # noqa: E402
from domainfm.host import Host  # noqa: E402
from domainfm.showcase import _run_config, demo_pairs  # noqa: E402
from domainfm.transferability import kendall_tau  # noqa: E402


def higher_is_better(host: Host, name: str, spec: Any) -> bool:
    """The direction of metric ``name``, from the metric itself (built as a run would)."""
    from domainfm.components import fill_params

    record = host.get("metric", name)
    hints = {**spec.data.hints(), **dict(spec.head.params)}
    return bool(getattr(record.build(**fill_params(record.build, {}, hints)), "higher_is_better", True))


def bench_plugin(host: Host, data: Any, budgets: list[float], soup_size: int, work: Path,
                 target_params: dict[str, Any]) -> dict[str, Any]:
    settings = dict(data.demo)
    encoder = data.default_encoder or next(r.name for r in host.components("encoder")
                                           if r.plugin == data.plugin)
    encoder_record = host.get("encoder", encoder)
    pre_data = host.get("dataset", encoder_record.default_dataset or data.name)
    pre_settings = dict(pre_data.demo)
    lr = float(settings.get("lr", 1e-3))
    pre_steps = int(pre_settings.get("pretrain_steps", 100))
    few = {**dict(settings.get("finetune_params", settings.get("params", data.tiny_params))),
           **target_params}
    metric = data.default_metrics[0].split(".", 1)[1]
    key = f"test/{metric}"

    candidates: dict[str, str] = {}
    for budget in budgets:
        steps = max(1, int(round(budget * pre_steps)))
        run = domainfm.pretrain(_run_config(
            pre_data, encoder, work, f"pre-{steps}", steps,
            dict(pre_settings.get("params", pre_data.tiny_params)),
            {"lr": lr, **pre_settings.get("pretrain_optim", {})}), host=host)
        candidates[f"pretrained {steps} steps"] = str(run.run_dir)
    candidates["random init"] = "random"

    def finetune(init: str | None, name: str, seed: int = 0, lr_scale: float = 1.0) -> tuple[Path, float]:
        optim = {"lr": lr, **settings.get("finetune_optim", {})}
        optim["lr"] = optim["lr"] * lr_scale
        config = _run_config(data, encoder, work, name, int(settings.get("finetune_steps", 50)),
                             few, optim)
        config.update(init=init, seed=seed)
        tuned = domainfm.finetune(config, host=host)
        specs.append(tuned.spec)
        score = domainfm.evaluate({"data": config["data"], "init": str(tuned.run_dir), "seed": 0,
                                   "output_dir": str(work / f"{name}-test"),
                                   "trainer": {"enable_progress_bar": False}}, host=host)
        return tuned.run_dir, score.metrics[key]

    specs: list[Any] = []
    target = _run_config(data, encoder, work, "rank", 1, few, {"lr": lr})
    started = time.perf_counter()
    ranking = domainfm.rank(target, list(candidates.values()), output=work / "rank", host=host)
    rank_seconds = time.perf_counter() - started
    by_source = {r["candidate"]: r for r in ranking.rows}
    rows, logme, probe, tested = [], [], [], []
    finetune_seconds = []
    for label, source in candidates.items():
        begun = time.perf_counter()
        _, score = finetune(None if source == "random" else source, f"ft-{label.replace(' ', '-')}")
        finetune_seconds.append(time.perf_counter() - begun)
        r = by_source[source]
        rows.append([label, f"{r['logme']:.4f}", f"{r['probe']:.3f}", f"{score:.4f}"])
        logme.append(r["logme"])
        probe.append(r["probe"])
        tested.append(score)
    higher = higher_is_better(host, data.default_metrics[0], specs[0])
    tested = [t if higher else -t for t in tested]
    tau_logme, tau_probe = kendall_tau(logme, tested), kendall_tau(probe, tested)

    best = max((c for c in candidates.items() if c[1] != "random"),
               key=lambda c: by_source[c[1]]["logme"])
    ingredients, singles = [], []
    for i in range(soup_size):
        run_dir, score = finetune(best[1], f"soup-{i}", seed=i, lr_scale=(0.5, 1.0, 1.5, 2.0)[i % 4])
        ingredients.append(str(run_dir))
        singles.append(score)
    soups = {}
    for method in ("uniform", "greedy"):
        result = domainfm.soup(ingredients, work / f"soup-{method}", method=method, host=host)
        evaluation = domainfm.evaluate({"init": str(result.path), "seed": 0,
                                        "output_dir": str(work / f"soup-{method}-test"),
                                        "trainer": {"enable_progress_bar": False}}, host=host)
        soups[method] = (evaluation.metrics[key], sum(i["used"] for i in result.ingredients))
    best_single = max(singles) if higher else min(singles)
    return {"plugin": data.plugin, "data": data.name, "metric": metric, "higher": higher,
            "rows": rows, "tau_logme": tau_logme, "tau_probe": tau_probe,
            "rank_seconds": rank_seconds, "finetune_seconds": sum(finetune_seconds) / len(finetune_seconds),
            "singles": singles, "best_single": best_single, "soups": soups, "best": best[0]}


def report(results: list[dict[str, Any]], command: str) -> str:
    parts = [f"`{command}` on {machine()}. Candidates: the encoder pretrained for fractions of the "
             "demo's pretraining budget, and random initialisation; one fixed fine-tuning recipe "
             "(the demo's) for all; scores on the test split (never the validation split that "
             "chose anything). Kendall's tau is between the rank score and the test metric "
             "(sign-corrected when lower is better).", ""]
    summary = []
    for r in results:
        parts += [f"**{r['plugin']}** (`{r['data']}`, test {r['metric']}):", "",
                  table(["candidate", "LogME", "linear probe", f"test {r['metric']}"], r["rows"]), ""]
        summary.append([r["plugin"], f"{r['tau_logme']:+.2f}", f"{r['tau_probe']:+.2f}",
                        f"{r['rank_seconds']:.1f} s", f"{r['finetune_seconds']:.1f} s",
                        f"{r['rank_seconds'] / r['finetune_seconds']:.2f}"])
    parts += ["Ranking against fine-tuning:", "",
              table(["plugin", "tau (LogME)", "tau (probe)", "rank, all candidates",
                     "one fine-tuning run", "ratio"], summary), "",
              "Soups of fine-tunes from the best-ranked pretrained encoder (seeds 0.., learning "
              "rate x0.5/1/1.5/2), test split:", ""]
    soup_rows = []
    for r in results:
        singles = ", ".join(f"{s:.4f}" for s in r["singles"])
        soup_rows.append([r["plugin"], r["metric"], singles, f"{r['best_single']:.4f}",
                          f"{r['soups']['uniform'][0]:.4f}",
                          f"{r['soups']['greedy'][0]:.4f} ({r['soups']['greedy'][1]} of {len(r['singles'])})"])
    parts += [table(["plugin", "metric", "single runs", "best single", "uniform soup",
                     "greedy soup (ingredients)"], soup_rows)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plugin", action="append", help="only these plugins")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.125, 0.5, 1.0, 2.0])
    parser.add_argument("--soup", type=int, default=4, help="fine-tuned runs in each soup")
    parser.add_argument("--target", action="append", default=[], metavar="PLUGIN:KEY=VALUE",
                        help="a data parameter of a plugin's target (fine-tuning) dataset, YAML value")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    import yaml

    target: dict[str, dict[str, Any]] = {}
    for item in args.target:
        owner, _, rest = item.partition(":")
        key, _, value = rest.partition("=")
        target.setdefault(owner, {})[key] = yaml.safe_load(value)
    host = Host()
    results = []
    with tempfile.TemporaryDirectory(prefix="rank-soup-") as tmp:
        for data in demo_pairs(host, args.plugin):
            print(f"== {data.plugin}: rank {len(args.budgets) + 1} candidates, soup {args.soup}",
                  flush=True)
            results.append(bench_plugin(host, data, args.budgets, args.soup, Path(tmp) / data.plugin,
                                        target.get(data.plugin, {})))
    command = "python bench/rank_and_soup.py " + " ".join(
        [*(f"--plugin {p}" for p in args.plugin or ()), "--budgets", *map(str, args.budgets),
         "--soup", str(args.soup), *(f"--target {t}" for t in args.target)])
    text = report(results, command)
    print(text)
    if not args.no_report:
        write_section("rank-and-soup", "## Choosing and combining checkpoints (`domainfm rank`, "
                      "`domainfm soup`)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
