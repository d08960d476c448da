"""The time-series plugin's bad-input matrix with the one line each case prints.

Every broken input the plugin's records supply (``bad_inputs`` of ``timeseries.csv``,
``timeseries.mixture`` and ``timeseries.forecast_csv``) is run through the CLI the way the
conformance harness runs it (``test_bad_input[...]`` asserts exit 2, this line, no traceback and
nothing written); this script prints the lines as a Markdown table and, with ``--readme``,
writes it into plugins/timeseries/README.md between its ``bad-inputs`` markers.

    .venv/bin/python bench/timeseries_bad_input.py --readme
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path

import yaml

from domainfm.cli import main as cli
from domainfm.host import Host
from domainfm.records import PredictorRecord
from domainfm.testing import tiny_run_config, trained_export

PLUGIN = "timeseries"
README = Path(__file__).resolve().parent.parent / "plugins" / PLUGIN / "README.md"
BEGIN, END = "<!-- bad-inputs -->", "<!-- /bad-inputs -->"


def run(config: dict, verb: str, work: Path) -> tuple[int, str]:
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli([verb, "--config", str(path)])
    return code, err.getvalue().strip()


def matrix(folder: Path) -> list[list[str]]:
    host = Host()
    rows = []
    for kind in ("dataset", "predictor"):
        for record in host.components(kind):
            if record.plugin != PLUGIN or record.bad_inputs is None:
                continue
            inputs = folder / record.name
            inputs.mkdir(parents=True)
            if isinstance(record, PredictorRecord):
                export, _ = trained_export(host, record, folder / "model")
            for case in record.bad_inputs(inputs):
                work = Path(tempfile.mkdtemp(dir=folder))
                if isinstance(record, PredictorRecord):
                    config = {"init": str(export), "predict": {
                        "name": record.name, "input": case.source, "output": str(work / "out")}}
                    verb = "predict"
                else:
                    verb = "finetune" if record.default_head else "pretrain"
                    params = {**dict(record.tiny_params), **dict(case.params)}
                    config = tiny_run_config(host, record, params, work / "run", verb)
                code, line = run(config, verb, work)
                line = line.replace(str(inputs) + "/", "").replace("|", "\\|")
                ok = code == 2 and "\n" not in line and case.expect in line
                rows.append([f"`{record.name}`", case.name, f"`{line}`" if ok else f"FAILED ({code}): {line}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the table into the README")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = matrix(Path(tmp))
    table = "\n".join(["| input of | broken input | what the user sees (exit status 2) |",
                       "|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows])
    print(table)
    if args.readme:
        text = README.read_text()
        block = f"{BEGIN}\n{table}\n{END}"
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        README.write_text(pattern.sub(lambda _: block, text) if pattern.search(text)
                          else text.rstrip() + "\n\n" + block + "\n")
    if any("FAILED" in r[2] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
