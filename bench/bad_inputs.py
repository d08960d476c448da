"""The bad-input matrix of a plugin: every broken input its records supply, and the one line a
user sees for it.

Each ``bad_inputs`` case of the plugin's datasets and predictors runs through the CLI exactly as
the conformance harness runs it (``test_bad_input[...]`` asserts exit status 2, one line naming
the file, no traceback and nothing written). This prints the lines as a Markdown table and, with
``--readme``, writes it into the plugin's README between its ``<!-- bad-inputs -->`` markers.

    python bench/bad_inputs.py --plugin geospatial --readme
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import metadata, util
from pathlib import Path

from domainfm.host import ENTRY_POINT_GROUP, Host
from domainfm.testing import bad_inputs, run_bad_input

BEGIN, END = "<!-- bad-inputs -->", "<!-- /bad-inputs -->"


def matrix(host: Host, plugin: str, work: Path) -> list[list[str]]:
    rows = []
    for record, case, folder in bad_inputs(host, plugin):
        case_work = Path(tempfile.mkdtemp(dir=work))
        code, err, _ = run_bad_input(host, record, case, case_work)
        lines = [line for line in err.splitlines() if line.strip()]
        ok = code == 2 and len(lines) == 1 and case.expect in lines[0]
        line = (lines[0] if lines else "").replace(str(folder) + "/", "")
        line = line.replace(str(Path(case.source).parent) + "/", "") if case.source else line
        shown = f"`` {line.replace('|', '/')} ``"
        rows.append([f"`{record.name}`", case.name, shown if ok else f"NOT REJECTED AS EXPECTED (exit {code}): {shown}"])
    return rows


def readme_of(plugin: str) -> Path:
    """The README beside the package the plugin's entry point names."""
    (entry,) = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == plugin]
    package = util.find_spec(entry.value.split(":")[0].split(".")[0])
    return Path(package.submodule_search_locations[0]).parent / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", action="append", required=True)
    parser.add_argument("--readme", action="store_true", help="write the table into the README")
    args = parser.parse_args(argv)
    host = Host()
    for plugin in args.plugin:
        with tempfile.TemporaryDirectory() as tmp:
            rows = matrix(host, plugin, Path(tmp))
        table = "\n".join(["| input of | broken input | what the user sees (exit status 2) |",
                           "|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows])
        print(table)
        if args.readme:
            readme = readme_of(plugin)
            text = readme.read_text()
            if BEGIN not in text:
                print(f"{readme} has no {BEGIN} ... {END} markers", file=sys.stderr)
                return 2
            block = f"{BEGIN}\n{table}\n{END}"
            readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block,
                                     text, flags=re.S))
            print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
