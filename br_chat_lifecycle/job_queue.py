"""A bounded FIFO of jobs served, in arrival order, by one worker thread.

One llama.cpp context can run one generation at a time, so every chat request (service or
action) becomes a ``Job`` here. ``submit`` never blocks: when ``max_waiting`` jobs are
already waiting it raises ``QueueFull`` at once so the caller can refuse the request with a
clear error. The worker calls ``handler(job)`` for each job; the handler must not raise
(exceptions are caught and recorded on the job anyway, so a job is always finished).
"""
import collections
import threading
from typing import Any, Callable, Deque, List, Optional


class QueueFull(Exception):
    pass


class QueueClosed(Exception):
    pass


class Job:
    """One unit of work. ``result`` is set exactly once, then ``done`` is set."""

    def __init__(self, payload: Any):
        self.payload = payload
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.started = threading.Event()
        self.done = threading.Event()
        self._cancel = threading.Event()
        self.cancel_reason = ''
        self._callbacks: List[Callable[['Job'], None]] = []
        self._lock = threading.Lock()

    def cancel(self, reason: str = 'cancelled') -> None:
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

    def finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.result, self.error = result, error
            self.done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.done.wait(timeout)


class JobQueue:

    def __init__(self, handler: Callable[[Job], None], max_waiting: int,
                 name: str = 'chat-worker'):
        self._handler = handler
        self.max_waiting = max_waiting
        self._waiting: Deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.current: Optional[Job] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self.current is not None

    def submit(self, job: Job) -> Job:
        with self._cond:
            if self._closed:
                raise QueueClosed('not accepting work')
            # Capacity is one running job plus max_waiting waiting ones; counting the running
            # one too makes the limit independent of how fast the worker picks jobs up.
            in_flight = len(self._waiting) + (self.current is not None)
            if in_flight >= self.max_waiting + 1:
                raise QueueFull(f'queue full: 1 request generating and {self.max_waiting} '
                                f'waiting (max_queue={self.max_waiting}); try again later')
            self._waiting.append(job)
            self._cond.notify()
        return job

    def remove(self, job: Job) -> bool:
        """Take a waiting job out of the line (it will not run); True if it was waiting."""
        with self._cond:
            try:
                self._waiting.remove(job)
            except ValueError:
                return False
            self._cond.notify_all()  # wait_idle() may be waiting for the line to empty
            return True

    def cancel_all(self, reason: str) -> List[Job]:
        """Cancel the running job and every waiting one; return them."""
        with self._cond:
            jobs = list(self._waiting)
            if self.current is not None:
                jobs.insert(0, self.current)
        for job in jobs:
            job.cancel(reason)
        return jobs

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing runs and nothing waits."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self.current is None and not self._waiting, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel everything, stop the worker, join it. True if the thread ended."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.cancel_all('shutting down')
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return  # closed and drained
                job = self._waiting.popleft()
                self.current = job
            job.started.set()
            try:
                self._handler(job)
            except BaseException as e:  # the handler should not raise; never lose a job
                job.finish(error=e)
            finally:
                job.finish()  # no-op if the handler finished it
                with self._cond:
                    self.current = None
                    self._cond.notify_all()
