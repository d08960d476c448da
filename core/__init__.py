"""domainfm: pretrain and fine-tune domain foundation models through one plugin host."""

from domainfm.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
