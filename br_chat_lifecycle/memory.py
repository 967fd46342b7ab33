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


M_MMAP_THRESHOLD = -3      # glibc mallopt parameter
LARGE_BLOCK_BYTES = 1 << 20


def return_large_blocks_to_the_os() -> None:
    """
    Make glibc serve every allocation of 1 MiB or more with its own mmap (no-op elsewhere).

    Saved KV states, their copies and llama.cpp's buffers are MBs each and come and go with
    every session switch and configure/cleanup cycle. By default glibc raises its mmap
    threshold after the first such block is freed, so later ones land in the heap, fragment
    it and stay resident: measured +3.5 MB of RSS per configure/turn/cleanup cycle with
    sessions (20 cycles: 400 -> 479 MB loaded). With a fixed threshold they are unmapped when
    freed (20 cycles: 389 -> 395 MB).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)
    except (OSError, AttributeError):
        pass
