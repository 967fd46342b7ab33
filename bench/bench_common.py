# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
What the benchmark scripts share: the environment they set up, their prompts, a concurrent run.

Importing it puts the repo root first on sys.path (and PYTHONPATH, for the node processes the
benches start), gives the run its own ROS_DOMAIN_ID (unless one is set) and keeps discovery on
this machine with the project's Fast DDS profile - what env.sh and the tests do.
"""
import os
from pathlib import Path
import random
import sys
import threading
import time
from typing import Callable, List, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO / 'config' / 'fastdds_services.xml'))
os.environ['PYTHONPATH'] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])

PROMPTS = [
    'Explain how a robot vacuum cleaner finds its way around a house.',
    'Write a short story about a lighthouse keeper and a lost ship.',
    'What are the main differences between a car engine and an electric motor?',
    'Describe a day in the life of a honey bee.',
    'Give me step by step instructions to plant a tree.',
]


def run_concurrently(call: Callable, prompts: Sequence[str],
                     start_together: bool = True) -> Tuple[List, List[str], float]:
    """
    Call ``call(prompt)`` for every prompt at once, one thread each.

    Return (results, errors, wall seconds); an exception becomes an error text, never lost.
    ``start_together``: the threads wait for each other before calling (a barrier).
    """
    results, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(len(prompts)) if start_together else None

    def worker(prompt):
        try:
            if barrier is not None:
                barrier.wait(30)
            res = call(prompt)
            with lock:
                results.append(res)
        except Exception as e:  # noqa: BLE001 - reported
            with lock:
                errors.append(f'{type(e).__name__}: {e}')

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    return results, errors, time.monotonic() - t0
