"""The bad-input matrix: enough cases of each kind, and the README lists exactly these.

Each case itself is run by the conformance suite (``test_bad_input[...]``)."""

import re
from pathlib import Path

from domainfm_timeseries.bad_inputs import forecast_cases, mixture_cases, predictor_cases

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_lists_every_bad_input_and_each_owner_has_at_least_six(tmp_path):
    owners = {"timeseries.csv": forecast_cases, "timeseries.mixture": mixture_cases,
              "timeseries.forecast_csv": predictor_cases}
    cases = set()
    for owner, make in owners.items():
        folder = tmp_path / owner
        folder.mkdir()
        made = make(folder)
        assert len(made) >= 6 and len({c.name for c in made}) == len(made)
        assert all(c.expect in (c.source or str(c.params)) for c in made)  # names the file
        cases |= {(owner, c.name) for c in made}
    rows = re.findall(r"^\| `(timeseries\.\w+)` \| ([^|]+?) \| `+ ?domainfm ", README.read_text(), re.M)
    assert set(rows) == cases
