"""Predictor ``timeseries.forecast_csv``: CSV in, CSV of forecasts (+ PNG) out.

The input holds the history (targets and exogenous columns) and, when the model infuses
known-future exogenous columns, ``horizon`` more rows whose targets are empty and whose
exogenous values are filled. Output timestamps continue the history at its inferred frequency.
Values are scaled with the training split's statistics when the model was trained on scaled
data and its training file is still readable (TTM's per-window std scaling makes the target
path scale-equivariant, so raw values also forecast sensibly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from domainfm.io import atomic_path
from domainfm_timeseries.data import ForecastDataModule, StandardScaler, resolve_columns
from domainfm_timeseries.frequency import continue_index, resolution_token
from domainfm_timeseries.io import DataError, read_frame, to_series


def _scaler(data: dict[str, Any]) -> StandardScaler | None:
    params = dict(data.get("params") or {})
    if data.get("name") != "timeseries.csv" or not params.get("scale", True):
        return None
    try:
        dm = ForecastDataModule(**params)
        dm.setup()
        return dm.scaler
    except (DataError, OSError):
        return None


def forecast_frame(model: Any, frame: pd.DataFrame, *, context_length: int | None = None,
                   where: str = "input") -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(history, forecast) frames for one series, using the export's data columns."""
    data = model.config.get("data") or {}
    params = dict(data.get("params") or {})
    ts = params.get("timestamp_column", "date")
    targets, past, future = resolve_columns(params, [c for c in frame.columns])
    columns = targets + past + future
    missing = [c for c in columns + [ts] if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: the model needs column(s) {missing}, which the file lacks; "
                        f"it was trained with targets {targets}, past exogenous {past}, "
                        f"known-future exogenous {future}")
    known = frame[targets].notna().any(axis=1).to_numpy()
    last = int(np.flatnonzero(known)[-1]) + 1 if known.any() else 0
    history, ahead = frame.iloc[:last].reset_index(drop=True), frame.iloc[last:].reset_index(drop=True)
    (series,) = to_series(history, columns=columns, timestamp_column=ts,
                          fill_missing=params.get("fill_missing", "error"),
                          freq=params.get("freq"), where=where)
    head = model.head
    horizon = head.filter_length or head.prediction_length
    cfg = model.encoder.config
    need = context_length or cfg.context_length
    if len(series.values) < cfg.patch_length:
        raise DataError(f"{where}: {len(series.values)} history rows, the model needs at least "
                        f"one patch ({cfg.patch_length}); context_length is {cfg.context_length}")
    scaler = _scaler(data)
    values = scaler.transform(series.values) if scaler else series.values
    batch: dict[str, torch.Tensor] = {
        "past_values": torch.from_numpy(values[-need:])[None],
        "freq_token": torch.tensor([resolution_token(series.freq)]),
    }
    if future:
        rows = ahead[future].to_numpy(dtype=np.float32) if len(ahead) else np.zeros((0, len(future)))
        if len(rows) < horizon or np.isnan(rows[:horizon]).any():
            raise DataError(f"{where}: known-future exogenous column(s) {future} need {horizon} "
                            f"filled rows after the last target value; found {len(rows)} rows"
                            + (" with empty cells" if len(rows) >= horizon else ""))
        future_values = rows[:horizon]
        if scaler:
            future_values = ((future_values - scaler.mean[-len(future):]) / scaler.std[-len(future):])
        batch["future_exog"] = torch.from_numpy(future_values.astype(np.float32))[None]
    with torch.no_grad():
        pred = model(batch)[0].double().numpy()  # (H, n_targets[, Q])
    if scaler:
        mean, std = scaler.mean[:len(targets)], scaler.std[:len(targets)]
        pred = pred * (std[:, None] if pred.ndim == 3 else std) + (mean[:, None] if pred.ndim == 3 else mean)
    stamps = continue_index(series.timestamps[-1], series.freq, pred.shape[0]) if series.freq \
        else pd.RangeIndex(1, pred.shape[0] + 1)
    out = pd.DataFrame({ts: stamps})
    quantiles = getattr(head, "quantiles", ())
    for i, name in enumerate(targets):
        if pred.ndim == 3:
            for j, q in enumerate(quantiles):
                out[f"{name}_q{q:g}"] = pred[:, i, j]
            mid = int(np.argmin([abs(q - 0.5) for q in quantiles]))
            out[name] = pred[:, i, mid]
        else:
            out[name] = pred[:, i]
    hist = pd.DataFrame({ts: series.timestamps, **{n: series.values[:, i] for i, n in enumerate(targets)}})
    return hist, out, targets


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, targets: list[str],
                  path: Path, timestamp_column: str, title: str = "") -> None:
    """History (last 4 horizons) and forecast per target; a band between outer quantiles."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = len(forecast)
    recent = history.tail(4 * horizon)
    fig, axes = plt.subplots(len(targets), 1, figsize=(9, 2.4 * len(targets)), squeeze=False)
    for ax, name in zip(axes[:, 0], targets):
        ax.plot(recent[timestamp_column], recent[name], color="0.3", lw=1, label="history")
        ax.plot(forecast[timestamp_column], forecast[name], color="C1", lw=1.5, label="forecast")
        bands = sorted(c for c in forecast.columns if c.startswith(f"{name}_q"))
        if len(bands) >= 2:
            ax.fill_between(forecast[timestamp_column], forecast[bands[0]], forecast[bands[-1]],
                            color="C1", alpha=0.25,
                            label=f"{bands[0].split('_q')[-1]}-{bands[-1].split('_q')[-1]} quantiles")
        ax.set_ylabel(name)
        ax.legend(loc="upper left", fontsize=7)
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def build_csv_predictor(*, context_length: int | None = None, plot: bool = True
                        ) -> Callable[[Any, Path, Path], list[Path]]:
    """Forecast every series of a CSV/Parquet file; ``destination`` is a folder."""

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        params = dict((model.config.get("data") or {}).get("params") or {})
        ts, ids = params.get("timestamp_column", "date"), params.get("id_column")
        frame = read_frame(source, timestamp_column=ts, id_column=ids)
        groups = list(frame.groupby(ids, sort=True)) if ids else [(None, frame)]
        histories, forecasts, targets = [], [], []
        for key, group in groups:
            where = source.name + (f", series {key!r}" if ids else "")
            history, forecast, targets = forecast_frame(model, group.reset_index(drop=True),
                                                        context_length=context_length, where=where)
            if ids:
                forecast.insert(0, ids, key)
            histories.append(history)
            forecasts.append(forecast)
        destination.mkdir(parents=True, exist_ok=True)
        csv = destination / f"{Path(source).stem}_forecast.csv"
        with atomic_path(csv) as tmp:
            pd.concat(forecasts).to_csv(tmp, index=False)
        written = [csv]
        if plot:
            png = destination / f"{Path(source).stem}_forecast.png"
            plot_forecast(histories[0], forecasts[0], targets, png, ts,
                          title=f"{source.name}" + (f" ({groups[0][0]})" if ids else ""))
            written.append(png)
        return written

    return run


def write_example(folder: Path) -> Path:
    """A synthetic history of 200 hourly rows plus 96 future rows of the known exogenous."""
    from domainfm_timeseries.synthetic import synthetic_frame

    frame = synthetic_frame(rows=296, seed=1)
    frame.loc[200:, ["load_a", "load_b", "humidity"]] = np.nan
    path = Path(folder) / "example_history.csv"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
