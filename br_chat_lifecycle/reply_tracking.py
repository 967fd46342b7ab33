# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Knowing when a reply has been handed to rclpy, and when a cancel request has been processed.

rclpy has no public hook for either, and the node needs both:
  * deactivate/cleanup/shutdown must not destroy the servers (or the context) while a service
    response or an action result is still on its way out, and must not sleep "long enough"
    instead (the old fixed 0.2 s grace);
  * a goal cancelled while it waits in the queue is answered at once, and rclpy accepts
    ``goal_handle.canceled()`` only after it has moved the goal to CANCELING, which happens
    right *after* the user's cancel callback returns (the old code spin-waited up to 2 s).

This module is the one place where the node reaches into rclpy's internals, each use small and
named, and each covered by a test that fails if it is removed
(test_reliability.py::test_cancel_queued_goal: the queued goal ends CANCELED before the running
one ends; test_robustness.py::test_signal_answers_running_and_queued_requests_and_exits: the
running goal's result reaches the client although the server is destroyed right after):
  * ``track_service`` wraps the Service object's ``send_response`` (public method, called by
    the executor right after the callback returns);
  * ``ChatActionServer`` overrides three ``ActionServer`` methods: ``_execute_goal`` (the
    task that runs the execute callback and then sets the result),
    ``_execute_get_result_request`` + ``_send_result_response`` (a result request registers
    a send that runs in a later task once the result is set; a goal that ended before its
    client asked is waited for, bounded, by ``wait_results_requested`` before the server is
    destroyed: test_robustness.py::test_result_asked_for_after_shutdown_began_still_arrives)
    and ``_execute_cancel_request``
    (the task that calls the cancel callback and then moves goals to CANCELING). They exist
    with the same signatures in rclpy Humble, Jazzy and Kilted.
"""
import threading
import time
from typing import Callable, Dict, Optional

from rclpy.action import ActionServer


class ReplyTracker:
    """
    Counter of the requests whose reply has not been handed to rclpy yet.

    ``wait_idle`` waits (bounded) until there are none.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def begin(self) -> None:
        with self._cond:
            self._pending += 1

    def end(self) -> None:
        with self._cond:
            self._pending = max(0, self._pending - 1)
            if self._pending == 0:
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)


def track_service(service, tracker: ReplyTracker):
    """
    Make ``tracker.end()`` run once the executor has sent a response of ``service``.

    The callback must call ``tracker.begin()`` when it starts.
    """
    send = service.send_response

    def send_response(response, header):
        try:
            return send(response, header)
        finally:
            tracker.end()

    service.send_response = send_response
    return service


# How long a server about to be destroyed waits for the result request of a goal that just
# ended (see ChatActionServer.wait_results_requested).
RESULT_REQUEST_GRACE_S = 2.0


class ChatActionServer(ActionServer):
    """
    An ActionServer that reports when results are sent and cancel requests processed.

    It reports (1) when every execute callback has ended and every result a client asked for has
    been sent, through ``tracker``, and (2) when a cancel request has been processed (the goals it
    cancels are CANCELING by then), through ``on_cancel_processed()``.
    """

    def __init__(self, *args, tracker: ReplyTracker,
                 on_cancel_processed: Optional[Callable[[], None]] = None, **kwargs):
        self.tracker = tracker
        self._on_cancel_processed = on_cancel_processed or (lambda: None)
        # Goals whose client had not asked for the result yet when they ended (id -> when): a
        # client asks after the goal response reaches it, which on a loaded host can be after
        # the goal ended - and a request that arrives once the server is destroyed is lost.
        self._asked = set()
        self._unasked: Dict[bytes, float] = {}
        self._asked_cond = threading.Condition()
        super().__init__(*args, **kwargs)

    async def _execute_goal(self, execute_callback, goal_handle):
        self.tracker.begin()
        try:
            # Runs the execute callback, then sets the goal's result future.
            await super()._execute_goal(execute_callback, goal_handle)
        finally:
            gid = bytes(goal_handle.goal_id.uuid)
            with self._asked_cond:
                if gid in self._asked:
                    self._asked.discard(gid)
                else:
                    now = time.monotonic()
                    for old in [g for g, t in self._unasked.items()
                                if now - t > RESULT_REQUEST_GRACE_S]:
                        del self._unasked[old]
                    self._unasked[gid] = now
                # a result request that came after its goal's grace was recorded as asked
                # and nothing discards it: keep only goals rclpy still holds (not expired)
                self._asked = {g for g in self._asked if g in self._goal_handles}
            self.tracker.end()

    async def _execute_get_result_request(self, request_header_and_message):
        # A result request for a known goal makes rclpy call _send_result_response once the
        # result is set - in a later executor task, not inside _execute_goal.
        gid = bytes(request_header_and_message[1].goal_id.uuid)
        if gid in self._goal_handles:
            self.tracker.begin()
            with self._asked_cond:
                if self._unasked.pop(gid, None) is None:
                    self._asked.add(gid)
                self._asked_cond.notify_all()
        await super()._execute_get_result_request(request_header_and_message)

    def wait_results_requested(self, timeout: float) -> bool:
        """
        Wait (bounded) until the goals that ended recently have had their result asked for.

        Recently: in the last RESULT_REQUEST_GRACE_S; each is waited for until its grace ends,
        all at most ``timeout``. Returns False if one was not asked for (a fire-and-forget
        client costs at most the grace, once). Call before destroying the server.
        """
        with self._asked_cond:
            now = time.monotonic()
            waiting = {g for g, t in self._unasked.items() if now - t < RESULT_REQUEST_GRACE_S}
            if not waiting:
                return True
            until = min(now + timeout,
                        max(self._unasked[g] for g in waiting) + RESULT_REQUEST_GRACE_S)
            return self._asked_cond.wait_for(lambda: not waiting & self._unasked.keys(),
                                             until - now)

    def _send_result_response(self, request_header, future):
        try:
            super()._send_result_response(request_header, future)
        finally:
            self.tracker.end()

    async def _execute_cancel_request(self, request_header_and_message):
        try:
            await super()._execute_cancel_request(request_header_and_message)
        finally:
            self._on_cancel_processed()
