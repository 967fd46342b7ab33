# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Request counters and rolling latency/throughput statistics (thread-safe, no ROS).

Units are fixed and part of the interface (diagnostics values and the ~/stats topic):
seconds (``*_s``), tokens per second (``*_tps``), megabytes (``*_mb``).
"""
from collections import deque
import statistics
import threading
from typing import Deque, Dict, Optional


def _p95(values) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


class ChatStats:

    WINDOW = 100  # requests in the rolling window

    def __init__(self):
        self._lock = threading.Lock()
        self.reset_counters()

    def reset_counters(self) -> None:
        with getattr(self, '_lock', threading.Lock()):
            self.requests_total = 0
            self.requests_ok = 0
            self.requests_failed = 0
            self.requests_refused = 0
            self.requests_cancelled = 0
            self._latency: Deque[float] = deque(maxlen=self.WINDOW)
            self._ttft: Deque[float] = deque(maxlen=self.WINDOW)
            self._gen_tps: Deque[float] = deque(maxlen=self.WINDOW)
            self._prompt_tps: Deque[float] = deque(maxlen=self.WINDOW)
            self.last_latency_s = 0.0
            self.last_ttft_s = 0.0
            self.last_gen_tps = 0.0
            self.last_prompt_tps = 0.0
            self.last_error = ''
            self.last_generation_failed = False

    def refused(self) -> None:
        with self._lock:
            self.requests_total += 1
            self.requests_refused += 1

    def record(self, outcome: str, latency_s: float, ttft_s: Optional[float] = None,
               gen_tokens: int = 0, gen_s: float = 0.0, prompt_tokens_evaluated: int = 0,
               prompt_s: float = 0.0, error: str = '') -> None:
        """
        Record the outcome of one request.

        outcome: 'ok' | 'failed' | 'cancelled' (for a request that reached the queue or was
        rejected by validation: validation failures count as 'failed').
        """
        with self._lock:
            self.requests_total += 1
            if outcome == 'ok':
                self.requests_ok += 1
                self.last_generation_failed = False
            elif outcome == 'cancelled':
                self.requests_cancelled += 1
            else:
                self.requests_failed += 1
                self.last_error = error
            self.last_latency_s = latency_s
            self._latency.append(latency_s)
            if ttft_s is not None:
                self.last_ttft_s = ttft_s
                self._ttft.append(ttft_s)
            if gen_tokens > 1 and gen_s > 0:
                self.last_gen_tps = gen_tokens / gen_s
                self._gen_tps.append(self.last_gen_tps)
            if prompt_tokens_evaluated > 0 and prompt_s > 0:
                self.last_prompt_tps = prompt_tokens_evaluated / prompt_s
                self._prompt_tps.append(self.last_prompt_tps)

    def generation_failed(self, error: str) -> None:
        with self._lock:
            self.last_generation_failed = True
            self.last_error = error

    def snapshot(self) -> Dict[str, float]:
        with self._lock:
            mean = lambda d: statistics.fmean(d) if d else 0.0  # noqa: E731
            return {
                'requests_total': self.requests_total,
                'requests_ok': self.requests_ok,
                'requests_failed': self.requests_failed,
                'requests_refused': self.requests_refused,
                'requests_cancelled': self.requests_cancelled,
                'latency_last_s': self.last_latency_s,
                'latency_mean_s': mean(self._latency),
                'latency_p95_s': _p95(self._latency),
                'ttft_last_s': self.last_ttft_s,
                'ttft_mean_s': mean(self._ttft),
                'generation_last_tps': self.last_gen_tps,
                'generation_mean_tps': mean(self._gen_tps),
                'prompt_last_tps': self.last_prompt_tps,
                'prompt_mean_tps': mean(self._prompt_tps),
            }
