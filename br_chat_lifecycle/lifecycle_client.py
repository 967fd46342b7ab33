# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Lifecycle service client for ONE managed node (plain rclpy, no manager policy).

The counterpart of nav2_util::LifecycleServiceClient: it talks to a standard lifecycle node
(rclpy or rclcpp) through ``<node>/change_state`` and ``<node>/get_state`` (lifecycle_msgs) and
knows nothing about ordering, rollback or heartbeats (that is lifecycle_manager.py). Every wait
is bounded; a call that does not have the wanted result raises a ``LifecycleError`` whose text
names the node, the operation and the reason::

    client = LifecycleClient(node, 'chat_node', transition_timeout=120.0)
    client.get_state()                 # 'unconfigured'
    client.transition(CONFIGURE)       # 'inactive' (ChangeState, then verified with get_state)
    client.change_state(ACTIVATE)      # True/False: the node's own answer, not verified
    get_states([a, b], timeout=1.0)    # {'/a': 'active', '/b': None}: in parallel, one try each

API (see the docstrings):

* ``LifecycleClient(node, managed_node, ...)``: ``node_name``, ``wait_for_service``,
  ``get_state``, ``change_state``, ``transition``, ``destroy``; module function
  ``get_states``; ``resolve_node_name``.
* ``LifecycleError`` with ``.node``, ``.operation``, ``.reason`` and ``.state`` (what is known of
  the node's state afterwards: a state label, ``'unknown'`` or ``'unreachable'``); subclasses
  ``ServiceUnavailable``, ``NoResponse``, ``TransitionFailed``.
* ``ShuttingDown``: the node's context was shut down (Ctrl-C) while a call waited.

Threading: the blocking methods wait for responses that another executor thread must process.
Call them from a plain thread while an executor spins the node, or from a callback of a
MultiThreadedExecutor; the service clients get their own Reentrant callback group by default,
so their responses never wait for the calling callback. Never call them from a callback of a
single-threaded executor (nothing would process the response: every call would time out).

Hand-written because rclpy has no lifecycle service client (ros2lifecycle's helpers are CLI
internals, nav2's is C++); it is only the two service calls plus bounded waiting.
"""

import contextlib
import functools
import threading
import time

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.callback_groups import ReentrantCallbackGroup

STATE_LABELS = {
    State.PRIMARY_STATE_UNKNOWN: 'unknown',
    State.PRIMARY_STATE_UNCONFIGURED: 'unconfigured',
    State.PRIMARY_STATE_INACTIVE: 'inactive',
    State.PRIMARY_STATE_ACTIVE: 'active',
    State.PRIMARY_STATE_FINALIZED: 'finalized',
    State.TRANSITION_STATE_CONFIGURING: 'configuring',
    State.TRANSITION_STATE_CLEANINGUP: 'cleaningup',
    State.TRANSITION_STATE_SHUTTINGDOWN: 'shuttingdown',
    State.TRANSITION_STATE_ACTIVATING: 'activating',
    State.TRANSITION_STATE_DEACTIVATING: 'deactivating',
    State.TRANSITION_STATE_ERRORPROCESSING: 'errorprocessing',
}
PRIMARY_STATES = ('unconfigured', 'inactive', 'active', 'finalized')
UNKNOWN = 'unknown'          # a transition timed out: the node may still be in the middle of it
# A transition's reply can be lost like get_state's (see get_state); after this many seconds
# without one, and as often again, change_state asks get_state whether the node has already
# reached the transition's target state.
LOST_REPLY_PROBE_S = 5.0
UNREACHABLE = 'unreachable'  # the node's service is missing or did not answer

CONFIGURE = Transition.TRANSITION_CONFIGURE
CLEANUP = Transition.TRANSITION_CLEANUP
ACTIVATE = Transition.TRANSITION_ACTIVATE
DEACTIVATE = Transition.TRANSITION_DEACTIVATE
UNCONFIGURED_SHUTDOWN = Transition.TRANSITION_UNCONFIGURED_SHUTDOWN
INACTIVE_SHUTDOWN = Transition.TRANSITION_INACTIVE_SHUTDOWN
ACTIVE_SHUTDOWN = Transition.TRANSITION_ACTIVE_SHUTDOWN

# transition id -> (name used in messages, primary state the node must be in afterwards)
TRANSITIONS = {
    CONFIGURE: ('configure', 'inactive'),
    CLEANUP: ('cleanup', 'unconfigured'),
    ACTIVATE: ('activate', 'active'),
    DEACTIVATE: ('deactivate', 'inactive'),
    UNCONFIGURED_SHUTDOWN: ('shutdown', 'finalized'),
    INACTIVE_SHUTDOWN: ('shutdown', 'finalized'),
    ACTIVE_SHUTDOWN: ('shutdown', 'finalized'),
}


class ShuttingDown(Exception):
    """The node's context is shutting down (Ctrl-C): the call was abandoned."""


class LifecycleError(Exception):
    """
    A lifecycle service call on one node did not have the wanted result.

    ``str(error)`` is a complete message naming the node, the operation and the reason.
    Attributes: ``node`` (fully qualified name), ``operation`` (transition name such as
    'configure', or 'get_state'), ``reason`` (the reason alone) and ``state`` (the node's state
    as known afterwards: a state label, ``'unknown'`` or ``'unreachable'``).
    """

    def __init__(self, message, node, operation, reason, state):
        super().__init__(message)
        self.node = node
        self.operation = operation
        self.reason = reason
        self.state = state


class ServiceUnavailable(LifecycleError):
    """The node's change_state/get_state service did not appear in time (state unreachable)."""


class NoResponse(LifecycleError):
    """The call was not answered in time (change_state: state unknown; get_state: unreachable)."""


class TransitionFailed(LifecycleError):
    """The node answered: it reported failure, or is not in the expected state afterwards."""


def _secs(value):
    """Return a timeout as it appears in messages: '30.0', '0.25'."""
    return str(float(value))


def transition_name(transition):
    """Return 'configure', 'shutdown', ... for a lifecycle_msgs Transition id."""
    return TRANSITIONS.get(transition, (f'transition {transition}', None))[0]


def resolve_node_name(node, name):
    """
    Return the fully qualified name of `name` as seen from `node`.

    'chat_node' -> '/<namespace of node>/chat_node'; an absolute name is kept (expanded as a
    service name is). A trailing '/' and surrounding blanks are ignored.
    """
    name = name.strip().rstrip('/')
    return node.resolve_service_name(f'{name}/get_state')[:-len('/get_state')]


@contextlib.contextmanager
def _shutdown_guard(node):
    """
    Turn any error raised because `node`'s context shut down into ShuttingDown.

    (Depending on the rclpy version, shutting the context down also destroys the node's
    clients: a call in progress then fails with InvalidHandle instead of timing out.)
    """
    try:
        yield
    except (ShuttingDown, LifecycleError):
        raise
    except Exception:
        if not node.context.ok():
            raise ShuttingDown() from None
        raise


def _abandoned_on_shutdown(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _shutdown_guard(self._node):
            return method(self, *args, **kwargs)
    return wrapper


class LifecycleClient:
    """change_state/get_state client for one managed lifecycle node."""

    def __init__(self, node, managed_node, service_wait_timeout=10.0, transition_timeout=30.0,
                 get_state_timeout=2.0, get_state_attempts=3, callback_group=None):
        """
        Create the two service clients on `node` (any rclpy Node).

        managed_node: the lifecycle node's name, relative to `node`'s namespace or absolute.
        service_wait_timeout: seconds to wait for a service to appear before giving up on it.
        transition_timeout: seconds for one ChangeState answer (configure may load a model).
        get_state_timeout: seconds for one GetState answer; get_state_attempts: how many.
        callback_group: of the two clients; default: a new ReentrantCallbackGroup.
        """
        self._node = node
        self.node_name = resolve_node_name(node, managed_node)
        self.service_wait_timeout = float(service_wait_timeout)
        self.transition_timeout = float(transition_timeout)
        self.get_state_timeout = float(get_state_timeout)
        self.get_state_attempts = max(1, int(get_state_attempts))
        group = callback_group if callback_group is not None else ReentrantCallbackGroup()
        self._change_state = node.create_client(
            ChangeState, f'{self.node_name}/change_state', callback_group=group)
        self._get_state = node.create_client(
            GetState, f'{self.node_name}/get_state', callback_group=group)

    def destroy(self):
        """Destroy the two service clients (the client cannot be used afterwards)."""
        self._node.destroy_client(self._change_state)
        self._node.destroy_client(self._get_state)

    # -- calls --------------------------------------------------------------------------------

    @_abandoned_on_shutdown
    def wait_for_service(self, timeout=None):
        """Wait until both services are available; True if they are, False after `timeout` s."""
        deadline = time.monotonic() + (self.service_wait_timeout if timeout is None
                                       else float(timeout))
        return all(self._wait_for(client, deadline - time.monotonic())
                   for client in (self._change_state, self._get_state))

    @_abandoned_on_shutdown
    def get_state(self, wait=None):
        """
        Return the node's current state label ('active', 'configuring', ...).

        Waits up to `wait` s (default service_wait_timeout) for the service, then asks up to
        get_state_attempts times, each bounded by get_state_timeout. Raises ServiceUnavailable
        or NoResponse (state 'unreachable'), or ShuttingDown.
        """
        wait = self.service_wait_timeout if wait is None else float(wait)
        if not self._wait_for(self._get_state, wait):
            self._raise(ServiceUnavailable, 'get_state', UNREACHABLE,
                        f'service {self.node_name}/get_state not available after {_secs(wait)} s'
                        ' (is the node running?)')
        # get_state is idempotent: ask again when no answer comes. The first reply to a
        # client that a just-started node has not fully discovered yet can be dropped by the
        # middleware (rmw_fastrtps "failed to send response (timeout)"), so one silence is
        # not proof that the node is gone.
        for _attempt in range(self.get_state_attempts):
            label = self._state_once()
            if label is not None:
                return label
        self._raise(NoResponse, 'get_state', UNREACHABLE,
                    f'no answer to get_state ({self.get_state_attempts} attempts of '
                    f'{_secs(self.get_state_timeout)} s)')

    @_abandoned_on_shutdown
    def change_state(self, transition):
        """
        Request one transition; return the node's answer (True = it reports success).

        `transition` is a lifecycle_msgs Transition id (CONFIGURE, ACTIVATE, ...). Nothing is
        verified, except that a reply the middleware dropped is not waited for: while no answer
        comes, get_state is asked every LOST_REPLY_PROBE_S s, and a node already in the
        transition's target state counts as success. Raises ServiceUnavailable (state
        'unreachable'), NoResponse after transition_timeout (state 'unknown': the node may still
        be in the middle of it), or ShuttingDown.
        """
        name = transition_name(transition)
        wait = self.service_wait_timeout
        if not self._wait_for(self._change_state, wait):
            self._raise(ServiceUnavailable, name, UNREACHABLE,
                        f'service {self.node_name}/change_state not available after '
                        f'{_secs(wait)} s')
        request = ChangeState.Request()
        request.transition.id = transition
        target = TRANSITIONS.get(transition, (name, None))[1]
        future = self._change_state.call_async(request)
        deadline = time.monotonic() + self.transition_timeout
        while True:
            probe = min(LOST_REPLY_PROBE_S, deadline - time.monotonic())
            if self._wait_future(future, probe):
                return bool(future.result().success)
            if time.monotonic() >= deadline:
                break
            if target is not None and self._state_once() == target:
                _forget(self._change_state, future)
                self._node.get_logger().warning(
                    f'{name} of {self.node_name}: no reply after {_secs(LOST_REPLY_PROBE_S)} s '
                    f"but the node is '{target}': the reply was lost, the transition succeeded")
                return True
        _forget(self._change_state, future)
        reason = (f'timed out after {_secs(self.transition_timeout)} s '
                  '(the node may still be in the middle of it)')
        raise NoResponse(f'{name} of {self.node_name} {reason}', self.node_name, name,
                         reason, UNKNOWN)

    @_abandoned_on_shutdown
    def transition(self, transition):
        """
        Perform one transition and verify it with get_state; return the new state label.

        Raises what change_state raises, or TransitionFailed when the node reports failure or
        is not in the transition's target primary state afterwards (``state`` is then the state
        get_state reported, or 'unreachable' when it could not be asked).
        """
        if transition not in TRANSITIONS:
            raise ValueError(f'transition {transition!r} is not one of the standard transitions '
                             f'{sorted(TRANSITIONS)} (lifecycle_msgs/Transition ids)')
        name, expected = TRANSITIONS[transition]
        success = self.change_state(transition)
        try:
            state = shown = self.get_state()
        except LifecycleError as error:
            state, shown = error.state, f'unknown: {error.reason}'
        if not success:
            self._raise(TransitionFailed, name, state,
                        f"node reported failure; state is '{shown}'")
        if state != expected:
            self._raise(TransitionFailed, name, state,
                        f"node reported success but state is '{shown}', expected '{expected}'")
        return state

    # -- plumbing -----------------------------------------------------------------------------

    def _raise(self, kind, operation, state, reason):
        raise kind(f'{operation} of {self.node_name} failed ({reason})', self.node_name,
                   operation, reason, state)

    def _ok(self):
        if not self._node.context.ok():
            raise ShuttingDown()

    def _wait_for(self, client, timeout):
        # Own loop instead of client.wait_for_service(): it also stops on shutdown (Ctrl-C).
        deadline = time.monotonic() + max(0.0, timeout)
        while not client.service_is_ready():
            self._ok()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _state_once(self):
        """One get_state request: the label, or None when no answer came in time."""
        response = self._call(self._get_state, GetState.Request(), self.get_state_timeout)
        return None if response is None else _label(response.current_state)

    def _call(self, client, request, timeout):
        """Call a service and wait for the response; None on timeout (request abandoned)."""
        future = client.call_async(request)
        if self._wait_future(future, timeout):
            return future.result()
        _forget(client, future)
        return None

    def _wait_future(self, future, timeout):
        # The future is completed by another executor thread; wait in short slices so that
        # shutdown of the context is noticed.
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        deadline = time.monotonic() + max(0.0, timeout)
        while not (done.is_set() or future.done()):
            self._ok()
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                return False
            done.wait(min(remaining, 0.1))
        return future.result() is not None


def get_states(clients, timeout):
    """
    Ask several nodes for their state in parallel: {node_name: label, or None}.

    One attempt each, all within `timeout` s, without waiting for services: None means the
    node's get_state service is not available or did not answer in time (a heartbeat).
    Raises ShuttingDown.
    """
    results = {client.node_name: None for client in clients}
    if not clients:
        return results
    with _shutdown_guard(clients[0]._node):
        pending = {}
        for client in clients:
            if client._get_state.service_is_ready():
                pending[client] = client._get_state.call_async(GetState.Request())
        deadline = time.monotonic() + timeout
        for client, future in pending.items():
            if client._wait_future(future, deadline - time.monotonic()):
                results[client.node_name] = _label(future.result().current_state)
            else:
                _forget(client._get_state, future)
    return results


def _label(state):
    return STATE_LABELS.get(state.id, state.label)


def _forget(client, future):
    """Abandon an unanswered request (a late answer is then dropped, not kept forever)."""
    with contextlib.suppress(Exception):
        client.remove_pending_request(future)
    with contextlib.suppress(Exception):
        future.cancel()
