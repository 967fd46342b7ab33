# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Client for the chat node's interfaces: chat_service, chat_action, sessions, lifecycle, stats.

From a plain script (the client brings its own rclpy context, node and spinning thread)::

    from br_chat_lifecycle.client import ChatClient

    with ChatClient() as chat:
        chat.bring_up('chat_node')                          # configure + activate, verified
        reply = chat.chat('What is ROS 2?', max_tokens=64)  # jobot_ai_msgs LLMChat.Response
        print(reply.success, reply.response)
        outcome = chat.stream('Tell me a story', feedback=lambda text: print(text, end=''))
        print(outcome.status, outcome.result.finish_reason, outcome.feedback_complete)
        goal = chat.send_goal('A long story, please')
        goal.wait_feedback(); goal.cancel(); print(goal.result().status)   # 'canceled'
        kitchen = chat.session('kitchen')
        kitchen.chat('My name is Ann.'); kitchen.chat('What is my name?'); kitchen.reset()

Inside an application that has its own node, pass it: ``ChatClient(node)``; the node must then
be spun by an executor in another thread (or a MultiThreadedExecutor), as for
lifecycle_client.py, because every call here blocks until the answer arrives.

Keyword arguments of ``chat``/``stream``/``send_goal`` that are not client options
(``timeout``, ``service``/``action``, ``feedback``, ``exact_feedback``) are request fields:
``chat(prompt, session_id='s1', max_tokens=32, temperature=0.0, response_format='json')``.
An unknown field raises TypeError (naming it) before anything is sent.

What the client does for you:

* Bounded waits. Every blocking call has a timeout; when it passes, ``ChatTimeout`` (also a
  TimeoutError) says what did not come and after how long; a server that does not appear
  raises ``NotAvailable``; a refused goal raises ``GoalRejected``. The node's own answers are
  returned, not raised: check ``response.success`` / ``outcome.result.error``.
* Service QoS KEEP_ALL (``SERVICE_QOS``, the node's too) for chat_service and the action's
  goal/cancel/result services: the default depth 10 response reader of a client loses
  responses of a burst (measured: 2-6 of 40 replies lost).
* Feedback. rclpy's ActionClient forgets a goal's feedback callback when the goal's result
  arrives, and result (a service reply) and feedback (a topic) are not ordered, so the last
  partials of a fast reply are often dropped on the client side. ``exact_feedback=True``
  collects feedback with a subscription of its own to the action's feedback topic instead
  (goals are sent with client-chosen ids, so every message is matched to its goal), and
  ``result()`` waits (bounded by ``feedback_grace``) until the partials add up to the response.
  Either way nothing is filled in: ``outcome.feedback_complete`` says whether the partials
  received concatenate to the response.
* Lifecycle through ``lifecycle_client.LifecycleClient`` (``lifecycle(name)``).

Hand-written because rclpy offers the parts (service and action clients, futures) but no
bounded blocking call for a node that another thread spins, nor a way to receive every feedback
message of a goal; this module is those waits plus our interfaces' names, QoS and fields.
"""
from dataclasses import dataclass, field
import json
import threading
import time
from typing import Callable, Dict, List, Optional
import uuid

from action_msgs.msg import GoalStatus
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat
import rclpy
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from unique_identifier_msgs.msg import UUID

from .lifecycle_client import ACTIVATE, CONFIGURE, LifecycleClient, TRANSITIONS
from .node_main import spin_until_shutdown

# Requests and replies of chat_service and of the action's goal/cancel/result services: keep all
# (the default depth 10 loses replies of a burst on the client's side, requests on the node's).
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# ActionClient's feedback reader (the node publishes with depth 1000).
FEEDBACK_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
# The exact-feedback subscription: DDS acknowledges a sample once it is in the reader's
# history, so what can overflow is this history while Python lags behind a fast stream
# (a tiny model streams thousands of tokens/s): deep enough for replies of 20000 pieces.
FEEDBACK_TAP_QOS = QoSProfile(depth=20000, reliability=ReliabilityPolicy.RELIABLE)

STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
                GoalStatus.STATUS_CANCELED: 'canceled'}
TRANSITION_IDS = {name: tid for tid, (name, _) in TRANSITIONS.items()
                  if name != 'shutdown'}   # 'configure' -> id, ... (shutdown depends on state)

_REQUEST_FIELDS = frozenset(LLMChat.Request.get_fields_and_field_types())
_GOAL_FIELDS = frozenset(LLMChatAction.Goal.get_fields_and_field_types())


def make_service_client(node, service: str, callback_group=None):
    """Create an rclpy client of the LLMChat service ``service`` with SERVICE_QOS."""
    return node.create_client(LLMChat, service, qos_profile=SERVICE_QOS,
                              callback_group=callback_group)


def make_action_client(node, action: str, callback_group=None) -> ActionClient:
    """
    Create an ActionClient of LLMChatAction ``action`` (SERVICE_QOS, FEEDBACK_QOS).

    ``callback_group``: default a new MutuallyExclusiveCallbackGroup of its own, not the node's
    default group. Mutually exclusive: feedback is handled one message at a time, in order. Its
    own: rclpy's executor takes a ready action client's data after marking its group as
    executing and outside the try/finally that unmarks it, so a client destroyed between the
    executor's wait and that take (close() while the node spins) leaves its group marked
    forever; in the node's default group every other entity of the node (the user's
    subscriptions, timers, ...) would never run again (test_client_spin reproduces it).
    """
    if callback_group is None:
        callback_group = MutuallyExclusiveCallbackGroup()
    return ActionClient(node, LLMChatAction, action, callback_group=callback_group,
                        goal_service_qos_profile=SERVICE_QOS,
                        result_service_qos_profile=SERVICE_QOS,
                        cancel_service_qos_profile=SERVICE_QOS,
                        feedback_sub_qos_profile=FEEDBACK_QOS)


class ChatClientError(Exception):
    """Base class of this module's errors."""


class NotAvailable(ChatClientError):
    """The service or action server did not appear within the wait."""


class ChatTimeout(ChatClientError, TimeoutError):
    """An answer (reply, goal response, result, feedback) did not come within the timeout."""


class GoalRejected(ChatClientError):
    """The node rejected the goal (it is not active)."""


def _secs(value: float) -> str:
    return f'{float(value):g}'


def wait_future(future, timeout: float, what: str, context: Optional[Context] = None):
    """
    Wait for an rclpy future that another thread completes; return its result.

    Raises ChatTimeout after ``timeout`` s (``what`` names what was awaited), or
    ChatClientError when ``context`` shuts down meanwhile.
    """
    done = threading.Event()
    if not future.done():
        future.add_done_callback(lambda _f: done.set())
    deadline = time.monotonic() + timeout
    while not (future.done() or done.is_set()):
        if context is not None and not context.ok():
            raise ChatClientError(f'{what}: the rclpy context was shut down while waiting')
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ChatTimeout(f'{what}: no reply within {_secs(timeout)} s')
        done.wait(min(remaining, 0.1))
    return future.result()


def _fields(kind, allowed, fields: dict):
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise TypeError(f'{kind.__name__} has no field {", ".join(unknown)} '
                        f'(fields: {", ".join(sorted(allowed))})')
    return kind(**fields)


@dataclass
class GoalOutcome:
    """
    How a goal ended.

    ``status`` ('succeeded', 'aborted', 'canceled' or the status code as text), the ``result``
    message, the ``partials`` received, and whether they concatenate to ``result.response``
    (``feedback_complete``).
    """

    status: str
    result: object
    partials: List[str] = field(default_factory=list)
    feedback_complete: bool = False


class FeedbackTap:
    """
    A subscription to an action's feedback topic that hands each message to its goal.

    Only goals registered with ``register`` (by goal id) receive feedback; messages of other
    goals (other clients of the same action) are ignored.
    """

    def __init__(self, node, action: str, callback_group=None):
        self._node = node
        self._goals: Dict[bytes, 'ChatGoal'] = {}
        self._lock = threading.Lock()
        self.topic = f'{action}/_action/feedback'
        self.subscription = node.create_subscription(
            LLMChatAction.Impl.FeedbackMessage, self.topic, self._on_message, FEEDBACK_TAP_QOS,
            callback_group=callback_group)

    def register(self, goal: 'ChatGoal') -> None:
        with self._lock:
            self._goals[goal.key] = goal

    def unregister(self, goal: 'ChatGoal') -> None:
        with self._lock:
            self._goals.pop(goal.key, None)

    def connected(self) -> bool:
        """Return True once a feedback publisher (the node's action server) is matched."""
        count = getattr(self.subscription, 'get_publisher_count', None)
        if count is not None:
            return count() > 0
        return self._node.count_publishers(self.subscription.topic_name) > 0

    def _on_message(self, msg) -> None:
        with self._lock:
            goal = self._goals.get(bytes(msg.goal_id.uuid))
        if goal is not None:
            goal._on_feedback(msg.feedback.partial)

    def destroy(self) -> None:
        self._node.destroy_subscription(self.subscription)


class ChatGoal:
    """
    One chat_action goal: feedback as it streams, cancel, and the outcome.

    Created by ``ChatClient.send_goal`` (or directly, with an ActionClient and optionally a
    FeedbackTap that receives this goal's feedback instead of the ActionClient's callback).
    Times (``time.monotonic()``): ``sent_at``, ``first_feedback_at``, ``last_feedback_at``,
    ``result_at``.
    """

    def __init__(self, action_client, goal_msg, feedback: Optional[Callable[[str], None]] = None,
                 tap: Optional[FeedbackTap] = None, timeout: float = 300.0,
                 wait_timeout: float = 10.0, feedback_grace: float = 10.0, context=None):
        self.id = UUID(uuid=list(uuid.uuid4().bytes))
        self.key = bytes(self.id.uuid)
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.feedback_grace = feedback_grace
        self._partials: List[str] = []
        self._user_feedback = feedback
        self._first = threading.Event()
        self._tap = tap
        self._context = context
        self._outcome: Optional[GoalOutcome] = None
        self.handle = None
        self._result_future = None
        self.first_feedback_at: Optional[float] = None
        self.last_feedback_at: Optional[float] = None
        self.result_at: Optional[float] = None
        if tap is not None:
            tap.register(self)
        self.sent_at = time.monotonic()
        self._send_future = action_client.send_goal_async(
            goal_msg, feedback_callback=None if tap is not None else self._on_action_feedback,
            goal_uuid=self.id)

    # -- feedback -----------------------------------------------------------------------------
    def _on_action_feedback(self, msg) -> None:
        self._on_feedback(msg.feedback.partial)

    def _on_feedback(self, text: str) -> None:
        self.last_feedback_at = time.monotonic()
        if self.first_feedback_at is None:
            self.first_feedback_at = self.last_feedback_at
        self._partials.append(text)
        self._first.set()
        if self._user_feedback is not None:
            self._user_feedback(text)

    @property
    def partials(self) -> List[str]:
        """Return the partials received so far, in order (a copy)."""
        return list(self._partials)

    def _wait(self, future, timeout, what):
        return wait_future(future, self.timeout if timeout is None else timeout, what,
                           self._context)

    # -- calls --------------------------------------------------------------------------------
    def accepted(self, timeout: Optional[float] = None) -> bool:
        """
        Wait for the goal response (at most ``timeout``, default wait_timeout).

        Returns True if the goal was accepted. The result is then requested at once, so it
        arrives as soon as the goal ends.
        """
        if self.handle is None:
            handle = self._wait(self._send_future,
                                self.wait_timeout if timeout is None else timeout,
                                'chat_action goal response')
            if handle.accepted:
                self._result_future = handle.get_result_async()
                self._result_future.add_done_callback(self._stamp_result)
            elif self._tap is not None:
                self._tap.unregister(self)
            self.handle = handle
        return self.handle.accepted

    def _stamp_result(self, _future) -> None:
        self.result_at = time.monotonic()

    def _require_accepted(self, timeout):
        if not self.accepted(timeout):
            raise GoalRejected('chat_action goal rejected (is the node active?)')

    def wait_feedback(self, timeout: Optional[float] = None) -> str:
        """Wait for the first partial (default: the reply timeout); return it."""
        self._require_accepted(None)
        timeout = self.timeout if timeout is None else timeout
        if not self._first.wait(timeout):
            raise ChatTimeout(f'chat_action feedback: none within {_secs(timeout)} s')
        return self._partials[0]

    def cancel(self, timeout: Optional[float] = None):
        """Ask the node to cancel the goal; return the CancelGoal response (bounded wait)."""
        self._require_accepted(None)
        return self._wait(self.handle.cancel_goal_async(),
                          self.wait_timeout if timeout is None else timeout, 'cancel')

    def result(self, timeout: Optional[float] = None) -> GoalOutcome:
        """Wait for the goal to end (at most ``timeout``, default the reply timeout)."""
        if self._outcome is not None:
            return self._outcome
        self._require_accepted(None)
        res = self._wait(self._result_future, timeout, 'chat_action result')
        text = res.result.response
        if self._tap is not None:
            # the node publishes every partial before the result; they may still be on the way
            deadline = time.monotonic() + self.feedback_grace
            while ''.join(self._partials) != text and time.monotonic() < deadline:
                time.sleep(0.005)
            self._tap.unregister(self)
        self._outcome = GoalOutcome(STATUS_NAMES.get(res.status, str(res.status)), res.result,
                                    self.partials, ''.join(self._partials) == text)
        return self._outcome


class Session:
    """A conversation on the node: every call carries this ``session_id``."""

    def __init__(self, client: 'ChatClient', session_id: Optional[str] = None):
        self.client = client
        self.id = session_id or f'session-{uuid.uuid4().hex[:12]}'

    def chat(self, prompt: str, **kwargs):
        return self.client.chat(prompt, session_id=self.id, **kwargs)

    def stream(self, prompt: str, **kwargs) -> GoalOutcome:
        return self.client.stream(prompt, session_id=self.id, **kwargs)

    def send_goal(self, prompt: str, **kwargs) -> ChatGoal:
        return self.client.send_goal(prompt, session_id=self.id, **kwargs)

    def reset(self, **kwargs):
        """Forget the history on the node (a blank prompt with reset_session)."""
        return self.client.chat(' ', session_id=self.id, reset_session=True, **kwargs)


class StatsWatch:
    """Follows a chat node's ``~/stats`` topic (a JSON snapshot per diagnostics period)."""

    def __init__(self, node, node_name: str, keep: int = 200):
        self._node = node
        self.messages: List[tuple] = []   # (monotonic receive time, dict), the newest ``keep``
        self._keep = keep
        self._new = threading.Condition()
        self.subscription = node.create_subscription(
            String, f'{node_name.rstrip("/")}/stats', self._on_message, 10)

    def _on_message(self, msg) -> None:
        with self._new:
            self.messages.append((time.monotonic(), json.loads(msg.data)))
            del self.messages[:-self._keep]
            self._new.notify_all()

    @property
    def latest(self) -> Optional[dict]:
        return self.messages[-1][1] if self.messages else None

    def wait(self, predicate=lambda s: True, timeout: float = 10.0,
             since: Optional[float] = None) -> dict:
        """
        Return the newest snapshot received after ``since`` that satisfies ``predicate``.

        ``since`` defaults to now. Raises ChatTimeout if none comes within ``timeout`` s.
        """
        since = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                for t, snap in reversed(self.messages):
                    if t < since:
                        break
                    if predicate(snap):
                        return snap
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChatTimeout(f'~/stats: no matching snapshot within {_secs(timeout)} s')
                self._new.wait(remaining)

    def destroy(self) -> None:
        self._node.destroy_subscription(self.subscription)


class ChatClient:
    """
    Blocking, bounded calls to one chat node's service and action (see the module doc).

    node: an rclpy node spun elsewhere; None = own context, node and executor thread
        (``name``, ``args`` are then the node name and ROS arguments).
    service, action: default names (``chat_service``, ``chat_action``); calls may name others.
    wait_timeout: seconds for a server to appear and for a goal response.
    timeout: default seconds for a reply or a goal result.
    exact_feedback: default of send_goal/stream (see the module doc); feedback_grace: seconds
        result() waits after the result for the last partials when it is on.
    """

    def __init__(self, node=None, service: str = 'chat_service', action: str = 'chat_action',
                 *, name: Optional[str] = None, args: Optional[List[str]] = None,
                 wait_timeout: float = 10.0, timeout: float = 300.0,
                 exact_feedback: bool = False, feedback_grace: float = 10.0, threads: int = 4):
        self.service = service
        self.action = action
        self.wait_timeout = wait_timeout
        self.timeout = timeout
        self.exact_feedback = exact_feedback
        self.feedback_grace = feedback_grace
        self._lock = threading.Lock()
        self._services: Dict[str, object] = {}
        self._actions: Dict[str, ActionClient] = {}
        self._taps: Dict[str, FeedbackTap] = {}
        self._lifecycle: Dict[str, LifecycleClient] = {}
        self._stats: Dict[str, StatsWatch] = {}
        self._executor = self._thread = None
        self.owns_node = node is None
        if node is None:
            # Own context: no rclpy signal handlers (they are installed for the default context
            # only), so Ctrl-C is a plain KeyboardInterrupt and the client can still cancel.
            self.context = Context()
            rclpy.init(args=args, context=self.context)
            node = rclpy.create_node(name or f'chat_client_{uuid.uuid4().hex[:8]}',
                                     context=self.context)
            self._executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
            self._executor.add_node(node)
            self._thread = threading.Thread(target=spin_until_shutdown, daemon=True, args=(
                self._executor, self.context, node.get_logger()))
            self._thread.start()
        else:
            self.context = node.context
        self.node = node

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Destroy what the client created (and its own node, context and thread)."""
        with self._lock:
            for watch in self._stats.values():
                watch.destroy()
            for tap in self._taps.values():
                tap.destroy()
            for lifecycle in self._lifecycle.values():
                lifecycle.destroy()
            for action_client in self._actions.values():
                action_client.destroy()
            for service_client in self._services.values():
                self.node.destroy_client(service_client)
            self._stats.clear()
            self._taps.clear()
            self._lifecycle.clear()
            self._actions.clear()
            self._services.clear()
        if self.owns_node:
            self._executor.shutdown(timeout_sec=2.0)
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)
            self._thread.join(5.0)

    # -- lifecycle ----------------------------------------------------------------------------
    def lifecycle(self, managed_node: str, **kwargs) -> LifecycleClient:
        """
        Return the LifecycleClient for ``managed_node`` (made once).

        kwargs: its options, e.g. ``transition_timeout``, used only when it is made.
        """
        with self._lock:
            if managed_node not in self._lifecycle:
                kwargs.setdefault('service_wait_timeout', self.wait_timeout)
                kwargs.setdefault('transition_timeout', self.timeout)
                self._lifecycle[managed_node] = LifecycleClient(self.node, managed_node, **kwargs)
            return self._lifecycle[managed_node]

    def transition(self, managed_node: str, transition: str) -> str:
        """
        Perform 'configure', 'activate', 'deactivate' or 'cleanup' and verify it.

        Returns the new state label. Raises lifecycle_client.LifecycleError (naming the node
        and the reason).
        """
        if transition not in TRANSITION_IDS:
            raise ValueError(f'transition {transition!r} is not one of '
                             f'{sorted(TRANSITION_IDS)} (use lifecycle(name) for shutdown)')
        return self.lifecycle(managed_node).transition(TRANSITION_IDS[transition])

    def bring_up(self, managed_node: str) -> str:
        """Configure and activate ``managed_node``; returns 'active' or raises LifecycleError."""
        self.lifecycle(managed_node).transition(CONFIGURE)
        return self.lifecycle(managed_node).transition(ACTIVATE)

    # -- service ------------------------------------------------------------------------------
    def service_client(self, service: Optional[str] = None):
        """Return the rclpy client of chat_service ``service`` (made once, KEEP_ALL QoS)."""
        service = service or self.service
        with self._lock:
            if service not in self._services:
                self._services[service] = make_service_client(self.node, service)
            return self._services[service]

    def wait_for_service(self, service: Optional[str] = None,
                         timeout: Optional[float] = None) -> None:
        """Wait until chat_service is available; NotAvailable after ``timeout`` s."""
        client = self.service_client(service)
        timeout = self.wait_timeout if timeout is None else timeout
        if not client.wait_for_service(timeout_sec=timeout):
            raise NotAvailable(f'service {client.srv_name} is not available after '
                               f'{_secs(timeout)} s (is the node running and active?)')

    def chat_async(self, prompt: str = '', *, service: Optional[str] = None,
                   wait: Optional[float] = None, **fields):
        """
        Send one LLMChat request; return the rclpy future of the response.

        Waits up to ``wait`` s (default wait_timeout) for the service first.
        """
        request = _fields(LLMChat.Request, _REQUEST_FIELDS, dict(fields, prompt=prompt))
        self.wait_for_service(service, wait)
        return self.service_client(service).call_async(request)

    def chat(self, prompt: str = '', *, timeout: Optional[float] = None,
             service: Optional[str] = None, **fields):
        """
        One chat_service call; returns the LLMChat response (check ``.success``).

        Raises NotAvailable, ChatTimeout (the request is then abandoned: a late reply is
        dropped), or TypeError for an unknown field.
        """
        future = self.chat_async(prompt, service=service, **fields)
        client = self.service_client(service)
        timeout = self.timeout if timeout is None else timeout
        try:
            return wait_future(future, timeout, f'{client.srv_name} reply', self.context)
        except ChatTimeout:
            client.remove_pending_request(future)
            raise

    # -- action -------------------------------------------------------------------------------
    def action_client(self, action: Optional[str] = None) -> ActionClient:
        """Return the ActionClient of chat_action ``action`` (made once, KEEP_ALL services)."""
        action = action or self.action
        with self._lock:
            if action not in self._actions:
                self._actions[action] = make_action_client(self.node, action)
            return self._actions[action]

    def feedback_tap(self, action: Optional[str] = None) -> FeedbackTap:
        """Return the exact-feedback subscription of ``action`` (made once)."""
        action = action or self.action
        with self._lock:
            if action not in self._taps:
                self._taps[action] = FeedbackTap(self.node, action)
            return self._taps[action]

    def wait_for_action(self, action: Optional[str] = None,
                        timeout: Optional[float] = None) -> None:
        """Wait until the action server is available; NotAvailable after ``timeout`` s."""
        timeout = self.wait_timeout if timeout is None else timeout
        if not self.action_client(action).wait_for_server(timeout_sec=timeout):
            raise NotAvailable(f'action {action or self.action} is not available after '
                               f'{_secs(timeout)} s (is the node running and active?)')

    def send_goal(self, prompt: str = '', *, action: Optional[str] = None,
                  feedback: Optional[Callable[[str], None]] = None,
                  exact_feedback: Optional[bool] = None, timeout: Optional[float] = None,
                  **fields) -> ChatGoal:
        """
        Send one chat_action goal; returns its ChatGoal at once (see ChatGoal).

        feedback(text) is called for each partial, from an executor thread.
        """
        goal_msg = _fields(LLMChatAction.Goal, _GOAL_FIELDS, dict(fields, prompt=prompt))
        exact = self.exact_feedback if exact_feedback is None else exact_feedback
        self.wait_for_action(action)
        tap = None
        if exact:
            tap = self.feedback_tap(action)
            deadline = time.monotonic() + self.wait_timeout
            while not tap.connected():   # else the first partials could go unseen
                if time.monotonic() > deadline:
                    raise NotAvailable(f'feedback topic {tap.topic} has no publisher after '
                                       f'{_secs(self.wait_timeout)} s')
                time.sleep(0.01)
        return ChatGoal(self.action_client(action), goal_msg, feedback=feedback, tap=tap,
                        timeout=self.timeout if timeout is None else timeout,
                        wait_timeout=self.wait_timeout, feedback_grace=self.feedback_grace,
                        context=self.context)

    def stream(self, prompt: str = '', *, timeout: Optional[float] = None,
               **kwargs) -> GoalOutcome:
        """send_goal, then wait for its outcome. Raises GoalRejected when the node refuses."""
        return self.send_goal(prompt, timeout=timeout, **kwargs).result()

    # -- sessions and stats -------------------------------------------------------------------
    def session(self, session_id: Optional[str] = None) -> Session:
        """Return a Session (a new random id when none is given)."""
        return Session(self, session_id)

    def stats(self, node_name: str) -> StatsWatch:
        """Return the StatsWatch of ``node_name``'s ~/stats topic (subscribed once)."""
        with self._lock:
            if node_name not in self._stats:
                self._stats[node_name] = StatsWatch(self.node, node_name)
            return self._stats[node_name]
