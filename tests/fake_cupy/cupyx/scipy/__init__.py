from . import special

__all__ = ["special"]
