"""Giving memory that start-up used and freed back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

# Seconds after start-up: by then the first scheduler tick and dispatcher pass have run.
RELEASE_AFTER_SECONDS = 1.0


def release_free_memory() -> None:
    """Collect garbage and ask glibc to return its free heap pages (about 1.5 MiB of an idle
    server). Elsewhere (musl, macOS) only the collection happens."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return  # not glibc
    trim(0)
