"""Test harness for the chat node: run it as a real process, talk to it over a real graph.

  ChatNodeProcess  starts ``python -m br_chat_lifecycle.chat_node`` with a params YAML file,
                   keeps its log, reads its RSS/threads from /proc, stops or kills it.
  GraphClient      one rclpy node (own Context, MultiThreadedExecutor in a thread) with the
                   calls a user makes: lifecycle change_state/get_state (what
                   ``ros2 lifecycle set/get`` call), chat_service, chat_action (feedback,
                   cancel), and a /diagnostics subscription.
Every wait is bounded; a timeout raises AssertionError with the node's log tail.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import yaml

import rclpy
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat

REPO_ROOT = Path(__file__).resolve().parent.parent

TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'shutdown': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,   # from unconfigured
    'shutdown_inactive': Transition.TRANSITION_INACTIVE_SHUTDOWN,
    'shutdown_active': Transition.TRANSITION_ACTIVE_SHUTDOWN,
}


def _proc_field(pid: int, field: str) -> int:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def wait_until(predicate, what: str, timeout: float = 60.0, period: float = 0.02,
               raise_: bool = True, log=None):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout``.
    ``log``: optional callable returning a node log, whose tail the timeout error shows."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if not raise_:
                return value
            tail = f'\n--- node log tail ---\n{log()[-3000:]}' if log else ''
            raise AssertionError(f'timed out after {timeout:.0f} s waiting for {what}{tail}')
        time.sleep(period)


def call_retry(client, request, what: str, per_try: float = 5.0, attempts: int = 5):
    """Call a service; resend when no reply comes. Only for requests that are safe to
    repeat. Why: a request sent before the server has discovered a brand-new client can be
    lost (wait_for_service already returns True as soon as the CLIENT knows the server;
    config/fastdds_services.xml makes this rare, not impossible)."""
    assert client.wait_for_service(timeout_sec=20.0), f'{what}: service not available'
    for _ in range(attempts):
        future = client.call_async(request)
        deadline = time.monotonic() + per_try
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        if future.done():
            return future.result()
        client.remove_pending_request(future)
        print(f'no reply to {what} within {per_try} s: sending it again')
    raise AssertionError(f'no reply to {what} after {attempts} attempts of {per_try} s')


class ChatNodeProcess:

    def __init__(self, params: Dict, name: Optional[str] = None, extra_args=()):
        self.name = name or f'chat_node_{uuid.uuid4().hex[:6]}'
        self._dir = tempfile.mkdtemp(prefix='chat_node_')
        self.params_file = os.path.join(self._dir, 'params.yaml')
        with open(self.params_file, 'w') as f:
            yaml.safe_dump({self.name: {'ros__parameters': dict(params)}}, f,
                           allow_unicode=True)
        self.log_path = os.path.join(self._dir, 'node.log')
        self._log = open(self.log_path, 'w')
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_LOGGING_BUFFERED_STREAM='0')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'br_chat_lifecycle.chat_node', '--ros-args',
             '-r', f'__node:={self.name}', '--params-file', self.params_file, *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT), env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return _proc_field(self.pid, 'VmRSS') / 1024.0

    def threads(self) -> int:
        return _proc_field(self.pid, 'Threads')

    def log_text(self) -> str:
        self._log.flush()
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)


class GraphClient:

    def __init__(self, name: Optional[str] = None):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name or f'test_client_{uuid.uuid4().hex[:6]}',
                                      context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._clients = {}
        self.diagnostics: List[DiagnosticArray] = []
        self._diag_sub = None

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:
            pass

    def close(self):
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5)

    # ------------------------------------------------------------ plumbing
    def _client(self, kind, name):
        key = (kind, name)
        if key not in self._clients:
            if kind is LLMChatAction:
                self._clients[key] = ActionClient(self.node, kind, name)
            else:
                self._clients[key] = self.node.create_client(kind, name)
        return self._clients[key]

    @staticmethod
    def wait_future(future, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {timeout} s waiting for {what}')
            time.sleep(0.005)
        return future.result()

    # ------------------------------------------------------------ lifecycle
    def change_state(self, node: str, transition: str, timeout: float = 60.0) -> bool:
        cli = self._client(ChangeState, f'/{node}/change_state')
        assert cli.wait_for_service(timeout_sec=20.0), f'/{node}/change_state not available'
        req = ChangeState.Request()
        req.transition.id = TRANSITIONS[transition]
        return self.wait_future(cli.call_async(req), timeout, f'{transition} of {node}').success

    def get_state(self, node: str, timeout: float = 10.0) -> str:
        cli = self._client(GetState, f'/{node}/get_state')
        assert cli.wait_for_service(timeout_sec=20.0), f'/{node}/get_state not available'
        return self.wait_future(cli.call_async(GetState.Request()), timeout,
                                f'get_state of {node}').current_state.label

    def available_transitions(self, node: str) -> List[str]:
        cli = self._client(GetAvailableTransitions, f'/{node}/get_available_transitions')
        assert cli.wait_for_service(timeout_sec=20.0)
        res = self.wait_future(cli.call_async(GetAvailableTransitions.Request()), 10,
                               'get_available_transitions')
        return [t.transition.label for t in res.available_transitions]

    def bring_up(self, node: str) -> None:
        assert self.change_state(node, 'configure'), f'configure of {node} failed'
        assert self.change_state(node, 'activate'), f'activate of {node} failed'

    # ------------------------------------------------------------ chat
    def chat_request(self, prompt: str, service: str = 'chat_service', timeout: float = 120.0,
                     wait_service: float = 20.0, **fields):
        """Call the service; returns the future (call .result() after wait_future)."""
        cli = self._client(LLMChat, service)
        assert cli.wait_for_service(timeout_sec=wait_service), f'{service} not available'
        req = LLMChat.Request(prompt=prompt, **fields)
        return cli.call_async(req)

    def chat(self, prompt: str, service: str = 'chat_service', timeout: float = 120.0,
             **fields):
        fut = self.chat_request(prompt, service, timeout, **fields)
        return self.wait_future(fut, timeout, f'{service} reply to {prompt[:30]!r}')

    def action_available(self, action: str = 'chat_action', timeout: float = 20.0) -> bool:
        return self._client(LLMChatAction, action).wait_for_server(timeout_sec=timeout)

    def send_goal(self, prompt: str, action: str = 'chat_action', **fields) -> 'GoalRun':
        return GoalRun(self, self._client(LLMChatAction, action), prompt, fields)

    # ------------------------------------------------------------ diagnostics
    def subscribe_diagnostics(self):
        if self._diag_sub is None:
            self._diag_sub = self.node.create_subscription(
                DiagnosticArray, '/diagnostics', self.diagnostics.append, 50)

    def latest_status(self, name_contains: str, timeout: float = 10.0, since: float = 0.0,
                      predicate=lambda s: True):
        """Most recent DiagnosticStatus whose name contains ``name_contains`` and that was
        received after ``since`` (index into self.diagnostics) and satisfies predicate."""
        self.subscribe_diagnostics()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in reversed(self.diagnostics[since:]):
                for st in msg.status:
                    if name_contains in st.name and predicate(st):
                        return st
            time.sleep(0.05)
        raise AssertionError(f'no diagnostic status matching {name_contains!r} in {timeout} s')


class GoalRun:
    """One action goal: collects feedback, can cancel, waits for the result."""

    def __init__(self, client: GraphClient, action_client, prompt: str, fields: dict):
        self.client = client
        self.partials: List[str] = []
        self.first_partial = threading.Event()
        assert action_client.wait_for_server(timeout_sec=20.0), 'chat_action not available'
        goal = LLMChatAction.Goal(prompt=prompt, **fields)
        self._send = action_client.send_goal_async(goal, feedback_callback=self._feedback)
        self.handle = None

    def _feedback(self, msg):
        self.partials.append(msg.feedback.partial)
        self.first_partial.set()

    def accepted(self, timeout: float = 20.0) -> bool:
        self.handle = GraphClient.wait_future(self._send, timeout, 'goal response')
        return self.handle.accepted

    def cancel(self, timeout: float = 20.0):
        if self.handle is None:
            self.accepted()
        return GraphClient.wait_future(self.handle.cancel_goal_async(), timeout, 'cancel')

    def result(self, timeout: float = 120.0):
        """(status, result) once the goal ends."""
        if self.handle is None:
            assert self.accepted(), 'goal was rejected'
        res = GraphClient.wait_future(self.handle.get_result_async(), timeout, 'goal result')
        # Feedback and result travel on different topics: let late feedback arrive.
        time.sleep(0.2)
        return res.status, res.result


STATUS = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
          GoalStatus.STATUS_CANCELED: 'canceled'}
