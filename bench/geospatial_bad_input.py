"""The geospatial bad-input matrix: every broken input the plugin supplies, run through the CLI,
with the one line a user sees (the table in plugins/geospatial/README.md).

Each case is one of ``bad_inputs`` of ``geospatial.scenes``, ``geospatial.chips`` and the
``geospatial.geotiff`` predictor (``domainfm_geospatial.data.broken``); the conformance harness
asserts the same cases (exit status 2, one line naming the file, nothing written).

    .venv/bin/python bench/geospatial_bad_input.py > matrix.md
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import yaml

import domainfm
from domainfm.cli import main as cli
from domainfm.testing import tiny_run_config


def run(verb: str, config: dict, work: Path) -> tuple[int, str]:
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli([verb, "--config", str(path)])
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def main() -> int:
    host = domainfm.Host()
    work = Path(tempfile.mkdtemp(prefix="geospatial-bad-input-"))
    rows = []
    predictor = host.get("predictor", "geospatial.geotiff")
    data = host.get("dataset", predictor.dataset)
    files = work / "train"
    files.mkdir()
    params = {**data.tiny_params, **data.files(files)}
    tuned = domainfm.finetune(tiny_run_config(host, data, params, work / "run", "finetune"),
                              host=host)
    model = domainfm.export(tuned.run_dir, work / "model", host=host)
    for name in ("geospatial.scenes", "geospatial.chips", "geospatial.geotiff"):
        kind = "predictor" if name == predictor.name else "dataset"
        owner = host.get(kind, name)
        folder = work / name
        folder.mkdir()
        for case in owner.bad_inputs(folder):
            if kind == "predictor":
                config = {"init": str(model), "predict": {"name": name, "input": case.source,
                                                          "output": str(work / "out")}}
                code, line = run("predict", config, work)
            else:
                config = tiny_run_config(host, owner, {**owner.tiny_params, **case.params},
                                         work / "rejected", "finetune")
                code, line = run("finetune", config, work)
            line = line.replace(str(folder) + "/", "").replace(str(folder), ".")
            rows.append(f"| `{name}` | {case.name} | {code} | `` {line} `` |")
    print("| input of | case | exit | the one line users see |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
