"""Data-parallel backends behind one small interface (see backend.py)."""

from .backend import Backend, SingleProcess

__all__ = ["Backend", "SingleProcess"]
