# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""Process memory (RSS) from /proc (Linux), plus returning freed heap to the OS."""
import ctypes
import ctypes.util


def _status_field(field: str, pid: int = 0) -> int:
    path = f'/proc/{pid}/status' if pid else '/proc/self/status'
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_mb(pid: int = 0) -> float:
    """Resident set size in MB (MiB) of this process (or ``pid``); 0.0 if unknown."""
    return _status_field('VmRSS', pid) / 1024.0


def trim_heap() -> None:
    """Ask glibc to give freed heap pages back to the OS (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
