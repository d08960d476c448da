"""Bad time-series input, each tried for real, with the error a user sees (BENCHMARKS.md).

    .venv/bin/python bench/timeseries_bad_input.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from domainfm.host import DomainfmError  # noqa: E402
from domainfm_timeseries.data import ForecastDataModule  # noqa: E402
from domainfm_timeseries.encoder import build_ttm  # noqa: E402
from domainfm_timeseries.heads import build_forecast_head  # noqa: E402
from domainfm_timeseries.predict import build_csv_predictor  # noqa: E402
from domainfm_timeseries.synthetic import synthetic_frame  # noqa: E402


def setup(path: Path, **kw) -> None:
    ForecastDataModule(path=str(path), context_length=32, prediction_length=8, **kw).setup()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ts-bad-"))
    cases = []

    def case(name: str, frame=None, run=None, **kw) -> None:
        path = folder / f"{len(cases)}.csv"
        if frame is not None:
            frame.to_csv(path, index=False)
        try:
            (run or setup)(path, **kw)
            cases.append([name, "no error (!)"])
        except DomainfmError as exc:
            cases.append([name, f"`{str(exc).replace('|', '/')}`"])

    f = synthetic_frame(200)
    dup = f.copy()
    dup.loc[10, "date"] = dup.loc[9, "date"]
    case("duplicate timestamp", dup)
    unsorted = f.copy()
    unsorted.iloc[[10, 11]] = unsorted.iloc[[11, 10]].to_numpy()
    case("unsorted timestamps", unsorted)
    nan = f.copy()
    nan.loc[20, "load_b"] = np.nan
    case("NaN in a target (default fill_missing='error')", nan)
    case("series shorter than context + horizon", f.head(30))
    case("irregular timestamps (a missing row)", f.drop(index=[50]))
    case("unknown frequency alias", f, freq="fortnightly")
    text = f.astype({"load_a": object})
    text.loc[7, "load_a"] = "n/a?"
    case("non-numeric target column", text)

    class Model:  # a tiny exogenous model, as domainfm.load_model returns it
        def __init__(self) -> None:
            self.encoder = build_ttm(preset="tiny").eval()
            self.head = build_forecast_head(self.encoder, prediction_channels=[0, 1],
                                            exogenous_channels=[3]).eval()
            self.config = {"data": {"name": "timeseries.csv",
                                    "params": {"context_length": 64, "prediction_length": 16}}}

        def __call__(self, batch):
            return self.head(self.encoder(batch), batch)

    predict = lambda path: build_csv_predictor()(Model(), path, folder / "out")  # noqa: E731
    case("known-future exogenous values missing at predict time", synthetic_frame(120), predict)
    case("exogenous column missing at predict time",
         synthetic_frame(120).drop(columns=["temperature"]), predict)
    write_section("timeseries_bad_input", "\n".join([
        "## Time series: bad input and the errors users see", "",
        "`.venv/bin/python bench/timeseries_bad_input.py` (each case is also asserted in "
        "plugins/timeseries/tests)", "",
        table(["input", "error"], cases)]))
    print("\n".join(" | ".join(c) for c in cases))


if __name__ == "__main__":
    main()
