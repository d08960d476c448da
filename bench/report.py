"""Write one benchmark's results into its own section of BENCHMARKS.md, atomically.

Each benchmark owns a section delimited by ``<!-- bench:KEY -->`` markers; running it again
replaces that section and leaves the others untouched.
"""

from __future__ import annotations

import platform
import re
import resource
from pathlib import Path

import torch

from domainfm.io import atomic_write_text

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    """A one-line description of where the numbers were taken."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, "
            f"{gpu}, torch {torch.__version__}")


def peak_rss_mib() -> float:
    """Peak resident set size of this process (VmHWM: unlike ru_maxrss, not inherited at exec,
    so a child started by a big parent reports its own peak)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_section(key: str, markdown: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section ``key`` of BENCHMARKS.md with ``markdown``."""
    begin, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, text)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
