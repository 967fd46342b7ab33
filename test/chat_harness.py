# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Test harness for the chat node: run it as a real process, talk to it over a real graph.

  ChatNodeProcess  br_chat_lifecycle.node_process.NodeProcess: ``python -m
                   br_chat_lifecycle.chat_node`` with a params YAML file, its log, RSS/threads
                   from /proc, stop (SIGINT) or kill.
  GraphClient      br_chat_lifecycle.client.ChatClient (own Context, MultiThreadedExecutor in
                   a thread: lifecycle, chat_service, chat_action, sessions, ~/stats) plus what
                   tests need on top: errors as AssertionError, the vendor-style calls with a
                   service/action name, any other service client, and /diagnostics.
Every wait is bounded; a timeout raises AssertionError.
"""
from pathlib import Path
import time
from typing import Dict, List, Optional
import uuid

from br_chat_lifecycle import client as chat_client
from br_chat_lifecycle.lifecycle_client import LifecycleError
from br_chat_lifecycle.node_process import NodeProcess
from diagnostic_msgs.msg import DiagnosticArray
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
from ros_helpers import wait_until  # noqa: F401 (re-exported: the tests' one wait_until)

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
STATUS = chat_client.STATUS_NAMES
_ERRORS = (chat_client.ChatClientError, LifecycleError)


def call_retry(client, request, what: str, per_try: float = 5.0, attempts: int = 5):
    """
    Call a service; resend when no reply comes.

    Only for requests that are safe to repeat. Why: a request sent before the server has discovered
    a brand-new client can be lost (wait_for_service already returns True as soon as the CLIENT
    knows the server; config/fastdds_services.xml makes this rare, not impossible).
    """
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


class ChatNodeProcess(NodeProcess):
    """The node process, started in the repository root, its output in a log file."""

    def __init__(self, params: Dict, name: Optional[str] = None, extra_args=()):
        super().__init__(params, name=name, extra_args=extra_args, cwd=str(REPO_ROOT))


class GraphClient(chat_client.ChatClient):
    """
    A ChatClient with its own context whose failures are AssertionErrors.

    So a failure is a test failure with the reason. Adds service calls by name and a
    /diagnostics subscription.
    """

    def __init__(self, name: Optional[str] = None):
        super().__init__(name=name or f'test_client_{uuid.uuid4().hex[:6]}',
                         wait_timeout=20.0, timeout=120.0)
        self._clients = {}
        self.diagnostics: List[DiagnosticArray] = []
        self._diag_sub = None

    # ------------------------------------------------------------ plumbing
    def _client(self, kind, name):
        """
        Return the client for service/action ``name`` of type ``kind``, made once.

        Lifecycle and chat clients are the ChatClient's own, so a request that primes one (see
        call_retry) primes the client that the other methods use.
        """
        if kind is LLMChat:
            return self.service_client(name)
        if kind is LLMChatAction:
            return self.action_client(name)
        if kind in (ChangeState, GetState) and name.startswith('/'):
            node, _, service = name.rpartition('/')
            if service in ('change_state', 'get_state'):
                lifecycle = self.lifecycle(node)
                # LifecycleClient has no public accessor for its two clients
                return lifecycle._change_state if kind is ChangeState else lifecycle._get_state
        key = (kind, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(kind, name)
        return self._clients[key]

    @staticmethod
    def wait_future(future, timeout: float, what: str):
        try:
            return chat_client.wait_future(future, timeout, what)
        except chat_client.ChatTimeout:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}') from None

    # ------------------------------------------------------------ lifecycle
    def _lifecycle_call(self, node: str, call, **timeouts):
        lifecycle = self.lifecycle(f'/{node.lstrip("/")}')
        for attr, value in timeouts.items():
            setattr(lifecycle, attr, float(value))
        try:
            return call(lifecycle)
        except _ERRORS as e:
            raise AssertionError(str(e)) from None

    def change_state(self, node: str, transition: str, timeout: float = 60.0) -> bool:
        """Return the node's answer to one transition (what ``ros2 lifecycle set`` prints)."""
        return self._lifecycle_call(node, lambda lc: lc.change_state(TRANSITIONS[transition]),
                                    transition_timeout=timeout)

    def get_state(self, node: str, timeout: float = 10.0) -> str:
        return self._lifecycle_call(node, lambda lc: lc.get_state(),
                                    get_state_timeout=timeout)

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
        try:
            return self.chat_async(prompt, service=service, wait=wait_service, **fields)
        except chat_client.NotAvailable as e:
            raise AssertionError(str(e)) from None

    def chat(self, prompt: str, service: str = 'chat_service', timeout: float = 120.0,
             **fields):
        fut = self.chat_request(prompt, service, timeout, **fields)
        return self.wait_future(fut, timeout, f'{service} reply to {prompt[:30]!r}')

    # ------------------------------------------------------------ diagnostics
    def subscribe_diagnostics(self):
        if self._diag_sub is None:
            self._diag_sub = self.node.create_subscription(
                DiagnosticArray, '/diagnostics', self.diagnostics.append, 50)

    def latest_status(self, name_contains: str, timeout: float = 10.0, since: int = 0,
                      predicate=lambda s: True):
        """
        Return the most recent matching DiagnosticStatus received after ``since``.

        Matching: its name contains ``name_contains`` and it satisfies ``predicate``. ``since`` is
        an index into self.diagnostics.
        """
        self.subscribe_diagnostics()

        def find():
            for msg in reversed(self.diagnostics[since:]):
                for st in msg.status:
                    if name_contains in st.name and predicate(st):
                        return st
            return None
        return wait_until(find, f'a diagnostic status matching {name_contains!r}', timeout,
                          0.05)
