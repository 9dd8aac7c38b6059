from . import _routines_linalg

__all__ = ["_routines_linalg"]
