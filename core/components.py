"""Names -> records -> built components, every parameter checked before anything is built.

A record's ``build`` signature is the schema of its parameters: an unknown parameter fails with
the valid names, and a value is checked against its annotation (type, ``Literal`` choices,
``Range`` bounds) before anything is built or trained. Parameters a config leaves unset are
filled from hints (the data specification, and for metrics the head's parameters) when the
build accepts a parameter of that name.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from domainfm.errors import ConfigError, DomainfmError
from domainfm.host import Host
from domainfm.records import DatasetRecord, EncoderRecord, Kind, LazyBuild
from domainfm.schema import coerce, did_you_mean
from domainfm.spec import PartSpec


def _target(build: Any) -> Any:
    """The function or class behind a build (through partials and lazy references)."""
    while True:
        if isinstance(build, functools.partial):
            build = build.func
        elif isinstance(build, LazyBuild):
            build = build.target
        else:
            return build.__init__ if inspect.isclass(build) else build


def _annotations(build: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(_target(build), include_extras=True)
    except Exception:  # noqa: BLE001 - annotations naming types only a type checker sees
        return {}


def accepted(build: Callable[..., Any], skip: int = 0) -> tuple[list[str], bool]:
    """(keyword parameter names, whether it takes ``**kwargs``) of a build after ``skip``."""
    params = list(inspect.signature(build).parameters.values())[skip:]
    names = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def check_params(build: Callable[..., Any], params: Mapping[str, Any], where: str,
                 skip: int = 0, extra: Iterable[str] | None = None,
                 complete: bool = False) -> dict[str, Any]:
    """``params`` checked against ``build``'s signature and annotations (values converted).

    A ``build`` taking ``**kwargs`` accepts any name, unless ``extra`` names what those may be
    (an encoder's overrides are the hyper-parameters its presets define). ``complete``: the
    parameters are final (about to be built with), so every required one must be there.
    """
    if complete:
        required = [p.name for p in list(inspect.signature(build).parameters.values())[skip:]
                    if p.default is p.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        missing = [name for name in required if name not in params]
        if missing:
            raise ConfigError(f"missing required parameter {where}.{missing[0]}"
                              + (f" (also {', '.join(missing[1:])})" if missing[1:] else ""))
    names, var_kw = accepted(build, skip)
    if not (var_kw and extra is None):
        names += [n for n in extra or () if n not in names]
        for key in params:
            if key not in names:
                raise ConfigError(f"unknown parameter {where}.{key}.{did_you_mean(key, names)}")
    hints = _annotations(build)
    return {k: coerce(hints[k], v, f"{where}.{k}") if k in hints else v for k, v in params.items()}


def fill_params(build: Callable[..., Any], params: Mapping[str, Any],
                hints: Mapping[str, Any], skip: int = 0) -> dict[str, Any]:
    """``params`` plus the hints for parameters of ``build`` that ``params`` leaves unset."""
    names, _ = accepted(build, skip)
    return {**{k: v for k, v in hints.items() if k in names and k not in params}, **params}


def encoder_params(record: EncoderRecord, preset: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder's overrides, checked against its build signature and presets."""
    if preset not in record.presets:
        raise ConfigError(f"unknown preset {preset!r} for encoder {record.name!r}."
                          f"{did_you_mean(preset, record.presets)}")
    hyper = {key for values in record.presets.values() for key in values}
    return check_params(record.build, params, "encoder.params", extra=hyper - {"preset"})


def build_encoder(host: Host, spec: PartSpec) -> Any:
    record: EncoderRecord = host.get("encoder", spec.name)
    preset = spec.preset or "tiny"
    return record.build(preset=preset, **encoder_params(record, preset, spec.params))


def build_with_encoder(host: Host, kind: Kind, spec: PartSpec, encoder: Any) -> Any:
    """A head or objective built on ``encoder``; one that cannot be (another plugin's encoder,
    say) is a one-line error naming both."""
    record = host.get(kind, spec.name)
    params = check_params(record.build, spec.params, f"{kind}.params", skip=1, complete=True)
    try:
        return record.build(encoder, **params)
    except DomainfmError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{kind} {spec.name!r} cannot be built on the encoder "
                          f"{type(encoder).__name__} ({type(exc).__name__}: {exc}); is it "
                          "meant for another plugin's encoder?") from None


def build_metrics(host: Host, specs: Iterable[PartSpec]) -> dict[str, Any]:
    metrics = {}
    for spec in specs:
        record = host.get("metric", spec.name)
        params = check_params(record.build, spec.params, f"metrics[{spec.name}].params",
                              complete=True)
        metrics[spec.name.split(".", 1)[1]] = record.build(**params)
    return metrics


def build_datamodule(host: Host, name: str, params: Mapping[str, Any]) -> Any:
    record: DatasetRecord = host.get("dataset", name)
    return record.build(**check_params(record.build, params, "data.params", complete=True))


__all__ = ["accepted", "build_datamodule", "build_encoder", "build_metrics", "build_with_encoder",
           "check_params", "encoder_params", "fill_params"]
