"""Reading and writing instrument files: ``read``, ``read_all``, ``write``.

One module per format family registers itself with :mod:`scopenet.io.registry`.
"""
from .registry import FORMATS, Format, find_format, read, read_all, register_format, supported_extensions, write

__all__ = ["FORMATS", "Format", "find_format", "read", "read_all", "register_format", "supported_extensions",
           "write"]
