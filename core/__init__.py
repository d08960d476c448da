"""domainfm: pretrain and fine-tune domain foundation models through one plugin host.

The public face: every CLI verb is one of these functions, and the types they take and return.
"""

__version__ = "0.2.0"

from domainfm.errors import DomainfmError  # noqa: E402
from domainfm.hookspecs import hookimpl  # noqa: E402

_API = {"RunResult", "evaluate", "export", "finetune", "load_encoder", "load_model", "pack",
        "predict", "predict_from_config", "pretrain"}
_MORE = {"Model": "domainfm.model", "Host": "domainfm.host", "load_config": "domainfm.config",
         "RunConfig": "domainfm.config", "ModelSpec": "domainfm.spec", "DataSpec": "domainfm.spec",
         "demo": "domainfm.showcase", "rank": "domainfm.ranking", "soup": "domainfm.soups"}

__all__ = sorted({"DomainfmError", "hookimpl", *_API, *_MORE})


def __getattr__(name: str):
    """Import the heavy parts (Lightning) only when used, so `domainfm plugins` starts fast."""
    import importlib

    if name in _API:
        return getattr(importlib.import_module("domainfm.api"), name)
    if name in _MORE:
        return getattr(importlib.import_module(_MORE[name]), name)
    raise AttributeError(f"module 'domainfm' has no attribute {name!r}")
