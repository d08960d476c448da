"""``domainfm soup``: one model from the averaged weights of several fine-tuned ones.

Model soups (Wortsman et al., ICML 2022): models fine-tuned from one pretrained encoder with the
same architecture, but other seeds or hyper-parameters, often average into a better model than
any of them. ``uniform`` averages all ingredients; ``greedy`` scores each on the validation
split (the split that selects checkpoints, never the test split), then, from the best down,
keeps an ingredient only if the soup's validation metric does not drop. Adapters are merged
first, so LoRA fine-tunes average as plain weights. Models whose architecture differs are
refused with the differing keys or shapes named, before anything is written; the soup is a
normal export folder whose model card lists the ingredients.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from domainfm.config import load_config
from domainfm.errors import ConfigError, DomainfmError
from domainfm.host import Host
from domainfm.model import Model, load_model, merged_copy, write_export
from domainfm.weights import key_difference, read_checkpoint

Method = Literal["uniform", "greedy"]


@dataclass
class SoupResult:
    path: Path
    method: str
    ingredients: list[dict[str, Any]]
    metric: str | None = None
    score: float | None = None


def _describe(part: Any) -> str:
    return "none" if part is None else \
        f"{part.name} preset {part.preset} params {dict(part.params)}"


def check_compatible(models: Sequence[Model], sources: Sequence[str]) -> None:
    """Every model has the first one's architecture: same parts, keys and shapes."""
    first = models[0]
    for model, source in zip(models[1:], sources[1:]):
        for part, a, b in zip(("encoder", "head", "objective"), first.spec.parts().values(),
                              model.spec.parts().values()):
            if a != b:
                raise DomainfmError(f"cannot average {source} with {sources[0]}: their {part} "
                                    f"differs ({_describe(b)} vs {_describe(a)})")
        problems = key_difference(first.state_dict(), model.state_dict())
        if problems:
            raise DomainfmError(f"cannot average {source} with {sources[0]}: {problems}")


def average(models: Sequence[Model]) -> Model:
    """The element-wise mean of every floating tensor (others, e.g. counters, from the first)."""
    states = [m.state_dict() for m in models]
    mean = {k: torch.stack([s[k].double() for s in states]).mean(0).to(v.dtype)
            if v.is_floating_point() else v for k, v in states[0].items()}
    base = models[0]
    soup = Model(*(_copy(p) for p in (base.encoder, base.head, base.objective)), base.spec)
    for part, module in soup.parts().items():
        if module is not None:
            prefix = part + "."
            module.load_state_dict({k[len(prefix):]: v for k, v in mean.items() if k.startswith(prefix)})
    return soup.eval()


def _copy(module: Any) -> Any:
    import copy

    return copy.deepcopy(module) if module is not None else None


def soup(sources: Sequence[str | os.PathLike[str]], destination: str | os.PathLike[str], *,
         method: Method = "uniform", config: Any = None, overwrite: bool = False,
         host: Host | None = None) -> SoupResult:
    """Average fine-tuned models into an export folder at ``destination``.

    ``greedy`` needs a validation set: ``config`` (a run config, its ``data`` and ``metrics``;
    by default the first model's training data and that dataset's first default metric).
    """
    if method not in ("uniform", "greedy"):
        raise ConfigError(f"soup method must be 'uniform' or 'greedy', got {method!r}")
    sources = [str(s) for s in sources]
    if len(sources) < 2:
        raise ConfigError(f"a soup needs at least two models, got {len(sources)}")
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise DomainfmError(f"export folder {str(destination)!r} already exists (use overwrite)")
    host = host or Host()
    models = [merged_copy(load_model(read_checkpoint(s), host), host) for s in sources]
    if any(m.head is None for m in models):
        raise DomainfmError("a soup averages fine-tuned models: "
                            f"{next(s for s, m in zip(sources, models) if m.head is None)} has no head")
    check_compatible(models, sources)
    ingredients = [{"source": s, "used": True, "score": None} for s in sources]
    metric = score = None
    if method == "uniform":
        result = average(models)
    else:
        with tempfile.TemporaryDirectory(prefix=".soup-", dir=destination.parent if
                                         destination.parent.exists() else None) as tmp:
            judge = _Judge(host, config, models[0], Path(tmp))
            metric = judge.metric
            scores = [judge(m, f"ingredient-{i}") for i, m in enumerate(models)]
            for item, value in zip(ingredients, scores):
                item["score"] = value
            order = sorted(range(len(models)), key=lambda i: scores[i], reverse=judge.higher)
            chosen, score = [order[0]], scores[order[0]]
            for i in order[1:]:
                trial = judge(average([models[j] for j in chosen + [i]]), f"soup-{len(chosen)}")
                if judge.not_worse(trial, score):
                    chosen, score = chosen + [i], trial
            for i, item in enumerate(ingredients):
                item["used"] = i in chosen
            result = average([models[i] for i in chosen])
    spec = result.spec
    result.spec = spec.replace(provenance=replace(spec.provenance, soup={
        "method": method, "metric": metric, "ingredients": ingredients}, parent=None))
    results = {f"val/{metric}": score} if metric and score is not None else {}
    path = write_export(result, destination, host, results=results, overwrite=overwrite)
    return SoupResult(path, method, ingredients, metric, score)


class _Judge:
    """Scores a model on the validation split with the run's first metric."""

    def __init__(self, host: Host, config: Any, model: Model, work: Path) -> None:
        from domainfm.components import build_metrics
        from domainfm.spec import PartSpec

        self.host, self.work = host, work
        raw = load_config(config) if config is not None else None
        data = raw.data if raw is not None and raw.data is not None else None
        if data is None:
            trained = model.spec.provenance.data
            if trained is None:
                raise ConfigError("a greedy soup needs a config naming the validation data")
            data = {"name": trained.name, "params": dict(trained.params)}
        else:
            data = {"name": data.name, "params": dict(data.params)}
        metrics = [m.name for m in raw.metrics] if raw is not None and raw.metrics else \
            list(host.get("dataset", data["name"]).default_metrics)
        if not metrics:
            raise ConfigError(f"a greedy soup needs a metric: dataset {data['name']!r} names no "
                              "default metrics; give 'metrics' in the config")
        self.name = metrics[0]
        self.metric = self.name.split(".", 1)[1]
        hints = {**model.spec.data.hints(), **dict(model.spec.head.params)}
        from domainfm.components import fill_params

        record = host.get("metric", self.name)
        built = build_metrics(host, [PartSpec(self.name, fill_params(record.build, {}, hints))])
        higher = getattr(next(iter(built.values())), "higher_is_better", None)
        if higher is None:
            raise ConfigError(f"metric {self.name!r} does not say whether higher is better "
                              "(set higher_is_better on the torchmetrics Metric)")
        self.higher = bool(higher)
        self.config = {"data": data, "metrics": [self.name], "evaluate": {"split": "val"},
                       "seed": raw.seed if raw is not None else 0,
                       "trainer": {"enable_progress_bar": False, "accelerator": "cpu"}}

    def __call__(self, model: Model, name: str) -> float:
        from domainfm.api import evaluate

        folder = write_export(model, self.work / name, self.host, merge_adapters=False)
        result = evaluate({**self.config, "init": str(folder),
                           "output_dir": str(self.work / f"{name}-eval")}, host=self.host)
        shutil.rmtree(folder, ignore_errors=True)
        key = f"val/{self.metric}"
        if key not in result.metrics:
            raise DomainfmError(f"evaluation on the validation split gave no {key}: "
                                f"{sorted(result.metrics)}")
        return result.metrics[key]

    def not_worse(self, value: float, best: float) -> bool:
        return value >= best if self.higher else value <= best


__all__ = ["SoupResult", "average", "check_compatible", "soup"]
