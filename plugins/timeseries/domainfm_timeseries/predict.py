"""Predictor ``timeseries.forecast_csv``: CSV in, CSV of forecasts (+ PNG) out.

Everything the predictor knows of the data comes from the model's data specification
(``model.spec.data``): the column roles (targets, past-only and known-future exogenous,
timestamp, series id), the scaler fitted on the training split, the frequency and how missing
values were filled; the training data is never read again. The input holds the history and,
when the model infuses known-future exogenous columns, ``horizon`` more rows whose targets are
empty and whose exogenous values are filled. Output timestamps continue the history at its
inferred frequency. Every series is forecast before anything is written, so a bad input writes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from domainfm.errors import DataError
from domainfm.io import atomic_path
from domainfm.records import PositiveInt
from domainfm.spec import DataSpec
from domainfm_timeseries.frequency import continue_index, resolution_token
from domainfm_timeseries.io import Columns, read_frame, to_series
from domainfm_timeseries.scaler import StandardScaler


def forecast_frame(model: Any, frame: pd.DataFrame, *, context_length: int | None = None,
                   where: str = "input") -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(history, forecast) frames for one series, read as the model's data specification says."""
    data: DataSpec = model.spec.data
    task = dict(data.task)
    columns = Columns.from_task(task, [c for c in frame.columns if c != task.get("id_column")])
    targets, future = list(columns.targets), list(columns.future_exog)
    missing = [c for c in columns.inputs if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: the model needs column(s) {missing}, which the file lacks; "
                        f"it was trained with targets {targets}, past exogenous "
                        f"{list(columns.past_exog)}, known-future exogenous {future}")
    if not targets:
        raise DataError(f"{where}: no target columns to forecast (columns are {list(frame.columns)})")
    known = frame[targets].notna().any(axis=1).to_numpy()
    if not known.any():
        raise DataError(f"{where}: no history: every row's target cells {targets} are empty")
    last = int(np.flatnonzero(known)[-1]) + 1
    history, ahead = frame.iloc[:last].reset_index(drop=True), frame.iloc[last:].reset_index(drop=True)
    (series,) = to_series(history, columns=columns.inputs, timestamp_column=columns.timestamp,
                          fill_missing=task.get("fill_missing", "error"), freq=task.get("freq"),
                          where=where)
    head, cfg = model.head, model.encoder.config
    horizon = head.filter_length or head.prediction_length
    if len(series.values) < cfg.patch_length:
        raise DataError(f"{where}: {len(series.values)} history rows, the model needs at least "
                        f"one patch ({cfg.patch_length}); context_length is {cfg.context_length}")
    scaler = StandardScaler.from_spec(data.normalization, len(columns.inputs))
    values = scaler.transform(series.values) if scaler else series.values
    need = context_length or cfg.context_length
    batch: dict[str, torch.Tensor] = {
        "past_values": torch.from_numpy(values[-need:])[None],
        "freq_token": torch.tensor([resolution_token(series.freq)]),
    }
    if future:
        rows = ahead[future].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
        if len(rows) < horizon or np.isnan(rows[:horizon]).any():
            raise DataError(f"{where}: known-future exogenous column(s) {future} need {horizon} "
                            f"filled rows after the last target value; found {len(rows)} rows"
                            + (" with empty cells" if len(rows) >= horizon else ""))
        rows = rows[:horizon]
        if scaler:
            rows = scaler.transform(rows, slice(len(columns.inputs) - len(future), None))
        batch["future_exog"] = torch.from_numpy(rows.astype(np.float32))[None]
    with torch.no_grad():
        pred = model(batch)[0].double().numpy()  # (H, n_targets[, Q])
    if pred.shape[1] != len(targets):
        raise DataError(f"{where}: the model forecasts {pred.shape[1]} channel(s), its data "
                        f"specification names {len(targets)} target(s) {targets}")
    if scaler:
        channels = slice(0, len(targets))
        pred = (scaler.inverse(pred.swapaxes(1, 2), channels).swapaxes(1, 2) if pred.ndim == 3
                else scaler.inverse(pred, channels))
    stamps = continue_index(series.timestamps[-1], series.freq, pred.shape[0]) if series.freq \
        else pd.RangeIndex(1, pred.shape[0] + 1)
    out = pd.DataFrame({columns.timestamp: stamps})
    quantiles = getattr(head, "quantiles", ())
    for i, name in enumerate(targets):
        if pred.ndim == 3:
            for j, q in enumerate(quantiles):
                out[f"{name}_q{q:g}"] = pred[:, i, j]
            mid = int(np.argmin([abs(q - 0.5) for q in quantiles]))
            out[name] = pred[:, i, mid]
        else:
            out[name] = pred[:, i]
    hist = pd.DataFrame({columns.timestamp: series.timestamps,
                         **{n: series.values[:, i] for i, n in enumerate(targets)}})
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


def build_csv_predictor(*, context_length: PositiveInt | None = None, plot: bool = True
                        ) -> Callable[[Any, Path, Path], list[Path]]:
    """Forecast every series of a CSV/Parquet file; ``destination`` is a folder."""

    def run(model: Any, source: Path, destination: Path) -> list[Path]:
        task = dict(model.spec.data.task)
        ts, ids = task.get("timestamp_column", "date"), task.get("id_column")
        frame = read_frame(source, timestamp_column=ts, id_column=ids,
                           layout=task.get("layout", "wide"),
                           variable_column=task.get("variable_column", "variable"),
                           value_column=task.get("value_column", "value"))
        groups = list(frame.groupby(ids, sort=True)) if ids else [(None, frame)]
        histories, forecasts, targets = [], [], []
        for key, group in groups:
            where = str(source) + (f", series {key!r}" if ids else "")
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
                          title=f"{Path(source).name}" + (f" ({groups[0][0]})" if ids else ""))
            written.append(png)
        return written

    return run


def write_example(folder: Path) -> Path:
    """A synthetic history of 200 hourly rows plus 96 future rows of the known exogenous."""
    from domainfm_timeseries.data.synthetic import synthetic_frame

    frame = synthetic_frame(rows=296, seed=1)
    frame.loc[200:, ["load_a", "load_b", "humidity"]] = np.nan
    path = Path(folder) / "example_history.csv"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
