# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A small nav2-style lifecycle manager for ANY standard ROS 2 lifecycle node (plain rclpy).

It drives an ordered list of lifecycle nodes through their transitions with the standard
``<node>/change_state`` and ``<node>/get_state`` services (lifecycle_msgs), offers std_srvs
Trigger services to start/stop the whole set, watches the nodes with a get_state heartbeat and
reports on /diagnostics. Nothing in here knows about the chat node. Full user documentation:
docs/lifecycle_manager.md.

This module is the manager's POLICY only (order, sequences, rollback, heartbeat/recovery,
services, diagnostics). Talking to one node (the two services, bounded waits, the get_state
retry, error messages) is lifecycle_client.py, as nav2 splits nav2_util::LifecycleServiceClient
from nav2_lifecycle_manager.

Design decisions (see also the docs):

* Order, as nav2_lifecycle_manager does it: startup = configure EVERY node in list order, then
  activate every node in list order; pause/reset/shutdown walk the list in REVERSE order;
  shutdown goes phase by phase (deactivate all, clean up all, shut down all) like nav2.
* State-aware: before each node it asks get_state and only performs the transitions still
  needed (an already-active node is left alone by startup, an inactive one is only activated).
  This makes every service idempotent and is what lets a respawned node be brought back.
* Each transition is a ChangeState call bounded by ``transition_timeout_s``, verified with
  get_state afterwards (the node must be in the expected primary state).
* The first failure or timeout stops the sequence; the Trigger response names the node, the
  transition and the reason. Shutdown is the exception: it is best-effort (a dead node must not
  prevent the others from being shut down) and reports every failure.
* Failed startup (differs from nav2, which leaves nodes where they are): by default the nodes
  are rolled back to 'unconfigured' in reverse order, so nothing is left half-up silently; the
  message says what had been brought up and what was rolled back. Parameter
  ``rollback_on_failed_startup: false`` gives the nav2 behaviour.
* Heartbeat without bond (a Python node has no bond on Humble): every ``heartbeat_period_s``
  all managed nodes are asked get_state in parallel. A node that does not answer, or is not in
  the state the manager brought the system to, is an incident: logged once as ERROR, shown as
  ERROR on the manager's diagnostics status. With ``attempt_respawn_reconnection`` the node is
  driven back to that state once it answers again in a state from which it can be (e.g. a
  process respawned by launch comes back 'unconfigured'). Unlike nav2 the OTHER nodes are left
  running: managed nodes here are independent services, not a pipeline.
* Threading: a MultiThreadedExecutor. Sequences (the five Trigger services, autostart and the
  heartbeat) share one MutuallyExclusive callback group, so they never overlap; the lifecycle
  clients are in a Reentrant group, so their responses are processed by other executor threads
  while a sequence thread waits on them (a sequence never waits on a future that needs its own
  thread). ``~/is_active`` has its own group and answers even during a long sequence.
* Ctrl-C (SIGINT) only stops the manager; it does not shut the managed nodes down (nav2 does
  not either): under launch every process gets the signal and handles it itself.
"""

import contextlib
import threading

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from .diagnostics_compat import ERROR, make_updater, OK, WARN
from .lifecycle_client import (ACTIVATE, ACTIVE_SHUTDOWN, CLEANUP, CONFIGURE, DEACTIVATE,
                               get_states, INACTIVE_SHUTDOWN, LifecycleClient, LifecycleError,
                               PRIMARY_STATES, resolve_node_name, ShuttingDown, transition_name,
                               UNCONFIGURED_SHUTDOWN, UNREACHABLE)
from .node_main import spin_until_shutdown

# Plans: current primary state -> transitions still needed. A state missing from a plan means
# the step cannot be done from there (the sequence fails with a message saying so).
PLAN_CONFIGURE = {'unconfigured': [CONFIGURE], 'inactive': [], 'active': []}
PLAN_ACTIVATE = {'inactive': [ACTIVATE], 'active': []}
PLAN_PAUSE = {'active': [DEACTIVATE], 'inactive': []}
PLAN_RESUME = {'inactive': [ACTIVATE], 'active': []}
# Reset (and the rollback of a failed startup): deactivate all, then clean up all.
PLAN_DOWN_DEACTIVATE = {'active': [DEACTIVATE], 'inactive': [], 'unconfigured': []}
PLAN_DOWN_CLEANUP = {'inactive': [CLEANUP], 'unconfigured': []}
PLAN_TO = {  # one node straight to a target primary state (recovery after a respawn/drop)
    'active': {'unconfigured': [CONFIGURE, ACTIVATE], 'inactive': [ACTIVATE], 'active': []},
    'inactive': {'unconfigured': [CONFIGURE], 'inactive': [], 'active': [DEACTIVATE]},
}
# Shutdown phases (all best-effort): deactivate all, clean up all, then finalize all.
PLAN_SHUTDOWN_DEACTIVATE = {'active': [DEACTIVATE], 'inactive': [], 'unconfigured': [],
                            'finalized': []}
PLAN_SHUTDOWN_CLEANUP = {'inactive': [CLEANUP], 'unconfigured': [], 'finalized': [],
                         'active': []}  # still active = its deactivate failed: finalize directly
PLAN_SHUTDOWN_FINALIZE = {'unconfigured': [UNCONFIGURED_SHUTDOWN],
                          'inactive': [INACTIVE_SHUTDOWN], 'active': [ACTIVE_SHUTDOWN],
                          'finalized': []}

DIAGNOSTIC_TASK = 'Lifecycle manager'


class LifecycleManager(Node):
    """Manages an ordered list of lifecycle nodes. See the module docstring."""

    def __init__(self, node_name='lifecycle_manager', **kwargs):
        super().__init__(node_name, **kwargs)
        self._declare_parameters()

        # Sequences and the heartbeat never overlap (one group + a lock for direct calls).
        self._sequence_group = MutuallyExclusiveCallbackGroup()
        self._client_group = ReentrantCallbackGroup()
        self._query_group = MutuallyExclusiveCallbackGroup()
        self._sequence_lock = threading.RLock()
        self._state_lock = threading.Lock()

        self._nodes = []          # fully qualified names, in the configured order
        self._lifecycle_clients = {}        # fqn -> LifecycleClient
        for name in self._node_names:
            fqn = resolve_node_name(self, name)
            if fqn in self._lifecycle_clients:
                self.get_logger().error(f'node_names lists {fqn} twice; using it once')
                continue
            self._nodes.append(fqn)
            self._lifecycle_clients[fqn] = LifecycleClient(
                self, fqn, service_wait_timeout=self._service_wait_timeout,
                transition_timeout=self._transition_timeout,
                get_state_timeout=self._get_state_timeout, callback_group=self._client_group)
        if not self._nodes:
            self.get_logger().warning('node_names is empty: there is nothing to manage')

        # What the manager knows (guarded by _state_lock).
        self._target = None       # state the last successful sequence brought the system to
        self._busy = None         # name of the sequence in progress
        self._last_error = None   # message of the last failed sequence (cleared by a success)
        self._node_state = dict.fromkeys(self._nodes, 'unknown')
        self._incident = dict.fromkeys(self._nodes)
        self._recovery_allowed = dict.fromkeys(self._nodes, True)

        for op in ('startup', 'shutdown', 'pause', 'resume', 'reset'):
            self.create_service(Trigger, f'~/{op}', self._trigger_callback(op),
                                callback_group=self._sequence_group)
        self.create_service(Trigger, '~/is_active', self._is_active_callback,
                            callback_group=self._query_group)

        self._updater = make_updater(self)
        self._updater.setHardwareID('br_chat_lifecycle')
        self._updater.add(DIAGNOSTIC_TASK, self._diagnose)

        if self._heartbeat_period > 0.0:
            self.create_timer(
                self._heartbeat_period, self._heartbeat, callback_group=self._sequence_group)

        self._autostart_timer = None
        if self._autostart:
            # Like nav2: start from the executor, not from the constructor, so that the node
            # is spinning (and its clients can receive responses) while it starts the others.
            self._autostart_timer = self.create_timer(
                0.01, self._autostart_once, callback_group=self._sequence_group)

        self.get_logger().info(
            f'managing {len(self._nodes)} node(s) in this order: {", ".join(self._nodes)}'
            f' (autostart: {self._autostart})')

    # -- parameters ---------------------------------------------------------------------------

    def _declare_parameters(self):
        def describe(text, read_only=True):
            return ParameterDescriptor(description=text, read_only=read_only)

        self.declare_parameter(
            'node_names', Parameter.Type.STRING_ARRAY,
            describe("Ordered list of lifecycle nodes to manage, relative (to this node's "
                     'namespace) or fully qualified. Started in this order, stopped in reverse.'))
        self.declare_parameter(
            'autostart', False,
            describe('Configure and activate all nodes as soon as the manager starts.'))
        self.declare_parameter(
            'transition_timeout_s', 30.0,
            describe('Maximum seconds for one ChangeState call (configure may load a model).'))
        self.declare_parameter(
            'service_wait_timeout_s', 10.0,
            describe("Maximum seconds to wait for a node's change_state/get_state services "
                     'to appear before a sequence gives up on it.'))
        self.declare_parameter(
            'get_state_timeout_s', 2.0,
            describe('Maximum seconds for one get_state answer (verification and heartbeat).'))
        self.declare_parameter(
            'heartbeat_period_s', 1.0,
            describe('Seconds between get_state heartbeats of all managed nodes; 0 disables.'))
        self.declare_parameter(
            'attempt_respawn_reconnection', True,
            describe('When a managed node comes back (e.g. respawned) or drops out of the '
                     'state the manager brought it to, drive it back to that state.'))
        self.declare_parameter(
            'rollback_on_failed_startup', True,
            describe('If startup fails, bring the nodes back to unconfigured in reverse order '
                     '(false: leave them where they are, as nav2 does).'))

        try:
            names = self.get_parameter('node_names').value
        except Exception:  # declared with a type but never set: ParameterUninitializedException
            names = []
        self._node_names = [str(n) for n in (names or []) if str(n).strip()]
        self._autostart = bool(self.get_parameter('autostart').value)
        self._transition_timeout = float(self.get_parameter('transition_timeout_s').value)
        self._service_wait_timeout = float(self.get_parameter('service_wait_timeout_s').value)
        self._get_state_timeout = float(self.get_parameter('get_state_timeout_s').value)
        self._heartbeat_period = float(self.get_parameter('heartbeat_period_s').value)
        self._respawn = bool(self.get_parameter('attempt_respawn_reconnection').value)
        self._rollback = bool(self.get_parameter('rollback_on_failed_startup').value)

    # -- public API (also usable in-process) --------------------------------------------------

    def startup(self):
        """Configure all nodes in order, then activate all in order. Returns (ok, message)."""
        with self._sequence('startup'):
            error = (self._phase('startup', self._nodes, PLAN_CONFIGURE)
                     or self._phase('startup', self._nodes, PLAN_ACTIVATE))
            if error is None:
                return self._succeeded('active', f'startup complete: {self._describe_nodes()}')
            message = f'startup failed: {error}.'
            up = [fqn for fqn in self._nodes if self._known(fqn) in ('inactive', 'active')]
            if up:
                message += ' Already brought up: ' + ', '.join(
                    f"{fqn} ('{self._known(fqn)}')" for fqn in up) + '.'
            if self._rollback:
                rolled, problems = self._roll_back()
                message += (' Rolled back to unconfigured in reverse order: '
                            + (', '.join(rolled) if rolled else 'nothing to roll back') + '.')
                if problems:
                    message += ' Could not roll back: ' + '; '.join(problems) + '.'
                return self._failed(message, target='unconfigured' if not problems else None)
            message += ' Nodes left as they are (rollback_on_failed_startup is false).'
            return self._failed(message, target=None)

    def pause(self):
        """Deactivate all nodes in reverse order."""
        return self._phases('pause', 'paused', 'inactive', reversed(self._nodes), PLAN_PAUSE)

    def resume(self):
        """Activate all nodes in order (they must be configured: use startup otherwise)."""
        return self._phases('resume', 'resumed', 'active', self._nodes, PLAN_RESUME)

    def reset(self):
        """Deactivate and clean up all nodes in reverse order (back to unconfigured)."""
        return self._phases('reset', 'reset', 'unconfigured', reversed(self._nodes),
                            PLAN_DOWN_DEACTIVATE, PLAN_DOWN_CLEANUP)

    def _phases(self, name, done, target, nodes, *plans):
        """Run ``plans`` one after the other over ``nodes``; stop at the first failure."""
        order = list(nodes)
        with self._sequence(name):
            error = None
            for plan in plans:
                error = error or self._phase(name, order, plan)
            if error is None:
                return self._succeeded(target, f'{done}: {self._describe_nodes()}')
            return self._failed(f'{name} failed: {error}. {self._describe_nodes()}')

    def shutdown(self):
        """Deactivate all, clean up all, shut down all, each in reverse order (best-effort)."""
        with self._sequence('shutdown'):
            order = list(reversed(self._nodes))
            problems, given_up = [], set()
            for plan in (PLAN_SHUTDOWN_DEACTIVATE, PLAN_SHUTDOWN_CLEANUP,
                         PLAN_SHUTDOWN_FINALIZE):
                for fqn in order:
                    if fqn in given_up:
                        continue
                    error = self._drive(fqn, 'shutdown', plan)
                    if error is not None:
                        # A node that cannot be reached is not retried in the next phases,
                        # but one whose deactivate/cleanup failed is still finalized directly.
                        if self._known(fqn) == UNREACHABLE:
                            given_up.add(fqn)
                        problems.append(error)
            if not problems:
                return self._succeeded('finalized', f'shut down: {self._describe_nodes()}')
            return self._failed('shutdown finished with errors: ' + '; '.join(problems)
                                + f'. {self._describe_nodes()}', target='finalized')

    def is_active(self):
        """(active, message): active = the system was started and every node is active."""
        with self._state_lock:
            active = (self._target == 'active' and self._busy is None
                      and all(self._node_state[f] == 'active' for f in self._nodes)
                      and not any(self._incident.values()))
            if active:
                return True, f'active: {self._describe_nodes_locked()}'
            parts = [f"target state '{self._target or 'none'}'"]
            if self._busy:
                parts.append(f'{self._busy} in progress')
            parts.extend(i for i in self._incident.values() if i)
            if self._last_error:
                parts.append(f'last error: {self._last_error}')
            parts.append(self._describe_nodes_locked())
            return False, 'not active: ' + '; '.join(parts)

    # -- sequences ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _sequence(self, name):
        with self._sequence_lock:
            with self._state_lock:
                self._busy = name
            self.get_logger().info(f'{name}: starting')
            try:
                yield
            finally:
                with self._state_lock:
                    self._busy = None
                self._publish_diagnostics()

    def _succeeded(self, target, message):
        with self._state_lock:
            self._target = target
            self._last_error = None
            for fqn in self._nodes:
                self._incident[fqn] = None
                self._recovery_allowed[fqn] = True
        self.get_logger().info(message)
        return True, message

    def _failed(self, message, target=None):
        with self._state_lock:
            self._target = target
            self._last_error = message
        self.get_logger().error(message)
        return False, message

    def _phase(self, op, order, plan):
        """Drive each node of `order` with `plan`; stop at and return the first error."""
        for fqn in order:
            error = self._drive(fqn, op, plan)
            if error is not None:
                return error
        return None

    def _drive(self, fqn, op, plan, wait_s=None):
        """Query the node's state and perform the transitions `plan` asks for. None = ok."""
        state, why = self._query_state(fqn, wait_s)  # wait_s None: service_wait_timeout_s
        if state is None:
            return f'{op} of {fqn} failed: {why}'
        if state not in plan:
            hint = {'finalized': ' (a finalized node must be restarted)',
                    'unconfigured': ' (call startup first)'}.get(state, '')
            return f"cannot {op} {fqn}: it is '{state}'{hint}"
        for transition in plan[state]:
            error = self._change_state(fqn, transition)
            if error is not None:
                return error
        return None

    def _roll_back(self):
        """Best-effort reset after a failed startup: (nodes rolled back, problems)."""
        before = {fqn: self._known(fqn) for fqn in self._nodes}
        problems, given_up = [], set()
        for plan in (PLAN_DOWN_DEACTIVATE, PLAN_DOWN_CLEANUP):
            for fqn in reversed(self._nodes):
                if fqn in given_up:
                    continue
                # The nodes were just talked to: no long wait for their services.
                error = self._drive(fqn, 'roll back', plan, wait_s=self._get_state_timeout)
                if error is not None:
                    given_up.add(fqn)
                    problems.append(error)
        rolled = [fqn for fqn in reversed(self._nodes)
                  if before[fqn] in ('inactive', 'active') and self._known(fqn) == 'unconfigured']
        return rolled, problems

    # -- lifecycle service calls (lifecycle_client.py) ---------------------------------------

    def _change_state(self, fqn, transition):
        """Perform one transition and verify it with get_state. Returns None or an error."""
        self.get_logger().info(f'{transition_name(transition)} {fqn}')
        try:
            state = self._lifecycle_clients[fqn].transition(transition)
        except LifecycleError as error:
            self._set_known(fqn, error.state)
            return str(error)
        self._set_known(fqn, state)
        return None

    def _query_state(self, fqn, wait_s=None):
        """(label, None) or (None, reason). Updates the last known state."""
        try:
            label = self._lifecycle_clients[fqn].get_state(wait=wait_s)
        except LifecycleError as error:
            self._set_known(fqn, error.state)
            return None, error.reason
        self._set_known(fqn, label)
        return label, None

    def _query_states(self, fqns):
        """get_state of several nodes in parallel (heartbeat): fqn -> label or None."""
        results = get_states([self._lifecycle_clients[fqn] for fqn in fqns],
                             self._get_state_timeout)
        for fqn, label in results.items():
            self._set_known(fqn, label if label is not None else UNREACHABLE)
        return results

    # -- state bookkeeping --------------------------------------------------------------------

    def _set_known(self, fqn, label):
        with self._state_lock:
            self._node_state[fqn] = label

    def _known(self, fqn):
        with self._state_lock:
            return self._node_state[fqn]

    def _describe_nodes(self):
        with self._state_lock:
            return self._describe_nodes_locked()

    def _describe_nodes_locked(self):
        if not self._nodes:
            return 'no nodes managed'
        return ', '.join(f"{fqn} '{self._node_state[fqn]}'" for fqn in self._nodes)

    # -- heartbeat ----------------------------------------------------------------------------

    def _heartbeat(self):
        """Check every node; report incidents; bring nodes back if allowed."""
        if not self._nodes or not self._sequence_lock.acquire(blocking=False):
            return  # a sequence is running (in-process caller): skip this beat
        try:
            states = self._query_states(self._nodes)
            with self._state_lock:
                target = self._target
            if target not in ('active', 'inactive'):
                return  # nothing is supposed to be running: only the states are reported
            changed = False
            for fqn in self._nodes:
                changed |= self._check_node(fqn, states[fqn], target)
            if changed:
                self._publish_diagnostics()
        except ShuttingDown:
            pass
        except Exception as exc:  # never let a heartbeat kill the executor thread
            self.get_logger().error(f'heartbeat failed: {exc!r}')
        finally:
            self._sequence_lock.release()

    def _check_node(self, fqn, state, target):
        """Handle one heartbeat result. Returns True if the incident status changed."""
        if state == target:
            self._recovery_allowed[fqn] = True
            return self._set_incident(fqn, None)
        if state is None:
            # Gone (dead, hung or not yet restarted): its next appearance may be recovered.
            self._recovery_allowed[fqn] = True
            return self._set_incident(
                fqn, f'{fqn} is not answering get_state (process dead or hung?)')
        if state not in PRIMARY_STATES:
            return False  # in the middle of a transition somebody else started: wait
        changed = self._set_incident(fqn, f"{fqn} is '{state}', expected '{target}'")
        if state == 'finalized' or not self._respawn or not self._recovery_allowed[fqn]:
            return changed
        # One attempt per appearance / per drop, so a node that keeps failing is not hammered.
        self._recovery_allowed[fqn] = False
        self.get_logger().warning(f"bringing {fqn} back from '{state}' to '{target}'")
        error = self._drive(fqn, 'recover', PLAN_TO[target])
        if error is None:
            self.get_logger().info(f"{fqn} is back to '{target}'")
            self._set_incident(fqn, None)
        else:
            self._set_incident(fqn, f'{fqn} could not be brought back: {error}')
        return True

    def _set_incident(self, fqn, message):
        with self._state_lock:
            previous = self._incident[fqn]
            self._incident[fqn] = message
        if message == previous:
            return False
        if message is not None:
            self.get_logger().error(message)  # once per incident (and per change of it)
        else:
            self.get_logger().info(f'{fqn}: incident over')
        return True

    # -- diagnostics --------------------------------------------------------------------------

    def _publish_diagnostics(self):
        """Publish the status now (after a sequence or a change of incident)."""
        if self.context.ok():
            with contextlib.suppress(Exception):  # racing with destroy_node at shutdown
                self._updater.force_update()

    def _diagnose(self, stat):
        with self._state_lock:
            target, busy, last_error = self._target, self._busy, self._last_error
            incidents = [i for i in self._incident.values() if i]
            states = dict(self._node_state)
        if incidents:
            stat.summary(ERROR, '; '.join(incidents))
        elif last_error:
            stat.summary(ERROR, last_error)
        elif busy:
            stat.summary(OK, f'{busy} in progress')
        elif target is None:
            stat.summary(OK, 'managed nodes not started (call ~/startup or set autostart)')
        elif target == 'finalized':
            stat.summary(WARN, 'managed nodes have been shut down')
        else:
            stat.summary(OK, f'managed nodes are {target}')
        stat.add('target state', target or 'none')
        stat.add('system active', self.is_active()[0])
        for fqn in self._nodes:
            stat.add(fqn, states[fqn])
        return stat

    # -- ROS callbacks ------------------------------------------------------------------------

    def _trigger_callback(self, op):
        method = getattr(self, op)

        def callback(_request, response):
            try:
                response.success, response.message = method()
            except ShuttingDown:
                response.success, response.message = False, f'{op} abandoned: shutting down'
            except Exception as exc:
                response.success, response.message = False, f'{op} failed: {exc!r}'
                self.get_logger().error(response.message)
            return response
        return callback

    def _is_active_callback(self, _request, response):
        response.success, response.message = self.is_active()
        return response

    def _autostart_once(self):
        self._autostart_timer.cancel()  # one shot
        with contextlib.suppress(ShuttingDown):
            self.startup()


def main(args=None):
    rclpy.init(args=args)
    node = None
    try:
        node = LifecycleManager()
        # Threads: one runs a sequence (and waits), the others process the service responses,
        # is_active and the diagnostics timer.
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        spin_until_shutdown(executor, node.context, node.get_logger())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # managed nodes are deliberately left alone (see module docstring)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
