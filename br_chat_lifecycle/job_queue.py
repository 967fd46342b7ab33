# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Admission for chat requests: at most ``max_running`` at once, ``max_waiting`` in line.

Every chat request (service or action) becomes a ``Job``. ``submit`` never blocks: when
``max_running`` jobs run and ``max_waiting`` wait, it raises ``QueueFull`` at once so the
caller can refuse the request with a clear error. A dispatcher thread starts waiting jobs in
arrival order whenever fewer than ``max_running`` run - except that two jobs with the same
``key`` (the same conversation) never run at once: the later one waits for the earlier, so a
follow-up turn sees the reply before it. ``start(job)`` launches a job and returns True if it
is now running (the owner calls ``done(job)`` when it ends), or False if it finished at once.
"""
import collections
import threading
from typing import Any, Callable, Deque, List, Optional, Set


class QueueFull(Exception):
    pass


class QueueClosed(Exception):
    pass


class Job:
    """One unit of work. ``result`` is set exactly once, then ``done`` is set."""

    def __init__(self, payload: Any, key: str = ''):
        self.payload = payload
        self.key = key                     # jobs with the same non-empty key run one at a time
        self.result: Any = None
        self.done = threading.Event()
        self._cancel = threading.Event()
        self.cancel_reason = ''
        self._callbacks: List[Callable[['Job'], None]] = []
        self._lock = threading.Lock()

    def cancel(self, reason: str = 'cancelled') -> None:
        with self._lock:
            if not self._cancel.is_set():
                self.cancel_reason = reason
                self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def add_done_callback(self, fn: Callable[['Job'], None]) -> None:
        with self._lock:
            if not self.done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def finish(self, result: Any = None) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.result = result
            self.done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)


class JobQueue:

    def __init__(self, start: Callable[[Job], bool], max_running: int, max_waiting: int,
                 on_error: Callable[[Job, BaseException], None] = lambda job, e: None,
                 name: str = 'chat-dispatcher'):
        self._start = start
        self._on_error = on_error
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._waiting: Deque[Job] = collections.deque()
        self._running: List[Job] = []
        self._keys: Set[str] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the running ones)."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def submit(self, job: Job) -> Job:
        with self._cond:
            if self._closed:
                raise QueueClosed('not accepting work')
            # Counting running jobs too makes the limit independent of how fast the
            # dispatcher picks jobs up.
            if len(self._waiting) + len(self._running) >= self.max_running + self.max_waiting:
                raise QueueFull(
                    f'queue full: {len(self._running)} request(s) generating '
                    f'(n_parallel={self.max_running}) and {len(self._waiting)} waiting '
                    f'(max_queue={self.max_waiting}); try again later')
            self._waiting.append(job)
            self._cond.notify_all()
        return job

    def remove(self, job: Job) -> bool:
        """Take a waiting job out of the line (it will not run); True if it was waiting."""
        with self._cond:
            try:
                self._waiting.remove(job)
            except ValueError:
                return False
            self._cond.notify_all()
            return True

    def done(self, job: Job) -> None:
        """Mark a running job as ended (its slot is free)."""
        with self._cond:
            if job in self._running:
                self._running.remove(job)
                self._keys.discard(job.key)
            self._cond.notify_all()

    def cancel_all(self, reason: str) -> List[Job]:
        """
        Cancel every running and waiting job and return them.

        Waiting ones stay in line and are answered 'cancelled' by the dispatcher without running.
        """
        with self._cond:
            jobs = list(self._running) + list(self._waiting)
            self._cond.notify_all()
        for job in jobs:
            job.cancel(reason)
        return jobs

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing runs and nothing waits."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and not self._waiting,
                                       timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Refuse new jobs, cancel everything, stop the dispatcher. True if it ended."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.cancel_all('shutting down')
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _next(self) -> Optional[Job]:
        """
        Return the oldest waiting job that may start now.

        Cancelled ones come first: they only need their answer.
        """
        for job in self._waiting:
            if job.cancelled:
                return job
        if len(self._running) >= self.max_running:
            return None
        for job in self._waiting:
            if not job.key or job.key not in self._keys:
                return job
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._next() is not None or (
                    self._closed and not self._waiting))
                job = self._next()
                if job is None:
                    return  # closed and drained
                self._waiting.remove(job)
                self._running.append(job)
                if job.key:
                    self._keys.add(job.key)
            try:
                running = self._start(job)
            except BaseException as e:  # the starter should not raise; never lose a job
                running = False
                try:
                    self._on_error(job, e)
                except BaseException:  # noqa: B902 - the dispatcher must survive anything
                    pass
                job.finish()  # no-op if on_error answered it
            if not running:
                self.done(job)
