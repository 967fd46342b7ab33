# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The reliability and robustness suites' ``Rig``: a chat node process plus its client plumbing.

The plumbing is br_chat_lifecycle.client's: KEEP_ALL service clients, and feedback collected by
a FeedbackTap (a plain subscription to the action's feedback topic) instead of ActionClient's
feedback callback, which rclpy drops as soon as the result arrives (result and feedback are
not ordered, so a fast reply routinely "loses" its last partials on the client side). One tap
per rig sees every feedback message the node published, also for goals sent through an
Endpoint on another participant.
"""
import time
import uuid

from br_chat_lifecycle import client as chat_client
from chat_harness import call_retry, ChatNodeProcess, GraphClient, wait_until
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter


class Rig:
    """
    One chat node process plus the client-side plumbing to talk to it.

    Service and action names are unique per node (the conftest's random ROS_DOMAIN_ID keeps
    concurrent pytest runs apart; unique names keep leftovers of earlier tests apart too).
    """

    def __init__(self, graph: GraphClient, params: dict, bring_up: bool = True,
                 tap: bool = True):
        uid = uuid.uuid4().hex[:8]
        self.graph = graph
        self.service = f'rel_chat_{uid}'
        self.action = f'rel_action_{uid}'
        full = {'chat_service_name': self.service, 'chat_action_name': self.action,
                'diagnostic_updater.period': 0.25}
        full.update(params)
        self.proc = ChatNodeProcess(full, name=f'rel_node_{uid}')
        self.name = self.proc.name
        node = graph.node
        # tap=False: no feedback subscriber of this process (to see a departed client alone)
        self.tap = chat_client.FeedbackTap(node, f'/{self.action}') if tap else None
        self._stats = chat_client.StatsWatch(node, f'/{self.name}', keep=100000)
        self.service_client = chat_client.make_service_client(node, self.service)
        # An ActionClient subscribes to the feedback topic too: none without the tap either.
        self.action_client = (chat_client.make_action_client(node, self.action)
                              if tap else None)
        self._params_client = node.create_client(SetParameters, f'/{self.name}/set_parameters')
        self.closed = False
        if bring_up:
            try:
                graph.bring_up(self.name)
            except AssertionError as e:     # say what the node was doing
                self.proc.stop()
                raise AssertionError(f'{e}\n--- node log tail ---\n{self.log()[-3000:]}') \
                    from None
            self.wait_servers()

    # ---------------------------------------------------------------- plumbing
    @property
    def stats_msgs(self):
        """(monotonic receive time, dict) of every ~/stats message received."""
        return self._stats.messages

    def log(self) -> str:
        try:
            with open(self.proc.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def wait_servers(self, timeout=20.0):
        assert self.service_client.wait_for_service(timeout_sec=timeout), \
            f'{self.service} not available\n{self.log()[-2000:]}'
        assert self.action_client is None or self.action_client.wait_for_server(
            timeout_sec=timeout), f'{self.action} not available\n{self.log()[-2000:]}'

    def close(self) -> int:
        if self.closed:
            return self.proc.proc.returncode
        self.closed = True
        node = self.graph.node
        for part in (self.tap, self._stats):
            if part is not None:
                part.destroy()
        node.destroy_client(self.service_client)
        node.destroy_client(self._params_client)
        if self.action_client is not None:
            self.action_client.destroy()
        return self.proc.stop()

    # ---------------------------------------------------------------- lifecycle
    def transition(self, name, timeout=60.0) -> bool:
        return self.graph.change_state(self.name, name, timeout=timeout)

    def state(self, timeout=10.0) -> str:
        return self.graph.get_state(self.name, timeout=timeout)

    def set_params(self, **values):
        assert self._params_client.wait_for_service(timeout_sec=20.0)
        req = SetParameters.Request(parameters=[
            Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        res = GraphClient.wait_future(self._params_client.call_async(req), 20.0,
                                      f'set_parameters {values}')
        bad = [r.reason for r in res.results if not r.successful]
        assert not bad, f'set_parameters {values} refused: {bad}'

    def stats(self, since=None, predicate=lambda s: True, timeout=10.0) -> dict:
        """
        Return the newest ~/stats message received after ``since`` that satisfies ``predicate``.

        ``since`` is a monotonic time.
        """
        try:
            return self._stats.wait(predicate, timeout, since)
        except chat_client.ChatTimeout:
            raise AssertionError(f'timed out after {timeout:.0f} s waiting for a matching '
                                 f'~/stats message\n--- node log tail ---\n'
                                 f'{self.log()[-3000:]}') from None

    # ---------------------------------------------------------------- chat
    def call_async(self, prompt, **fields):
        return self.service_client.call_async(LLMChat.Request(prompt=prompt, **fields))

    def chat(self, prompt, timeout=60.0, **fields):
        return GraphClient.wait_future(self.call_async(prompt, **fields), timeout,
                                       f'reply to {prompt[:30]!r}')

    def goal(self, prompt, **fields) -> 'Goal':
        return Goal(self, prompt, fields)


class Endpoint:
    """
    Service and action clients for ``rig``'s node on another GraphClient (another DDS participant).

    Feedback is still collected by the rig's tap.
    """

    def __init__(self, rig: Rig, graph: GraphClient):
        self.rig = rig
        self.service_client = chat_client.make_service_client(graph.node, rig.service)
        self.action_client = chat_client.make_action_client(graph.node, rig.action)
        assert self.service_client.wait_for_service(timeout_sec=20.0)
        assert self.action_client.wait_for_server(timeout_sec=20.0)

    def call_async(self, prompt, **fields):
        return self.service_client.call_async(LLMChat.Request(prompt=prompt, **fields))

    def goal(self, prompt, **fields) -> 'Goal':
        return Goal(self.rig, prompt, fields, self.action_client)

    def warm_up(self, attempts: int = 5) -> None:
        """
        Get one service reply and one goal response through (resent while none comes).

        A brand-new participant can be discovered late by the node on a loaded host, and a
        reply sent before that is lost; after this, the node knows this participant. The
        requests count in the node's statistics (take a baseline after).
        """
        call_retry(self.service_client, LLMChat.Request(prompt='warm-up', max_tokens=1),
                   'warm-up request')
        for _ in range(attempts):
            goal = self.goal('warm-up', max_tokens=1)
            try:
                accepted = goal.accepted(timeout=5.0)
            except AssertionError:      # no goal response: the only case worth resending
                print('no goal response to the warm-up goal within 5 s: sending another')
                continue
            assert accepted, 'the warm-up goal was rejected'
            goal.result(timeout=60)
            return
        raise AssertionError(f'no goal response after {attempts} warm-up goals')


class Goal:
    """
    One action goal (a ChatGoal whose feedback comes from the rig's tap).

    With the harness's conventions: AssertionError on timeouts, result() -> (status name, result).
    """

    def __init__(self, rig: Rig, prompt: str, fields: dict, action_client=None):
        self.rig = rig
        self.sent = time.monotonic()
        self._goal = chat_client.ChatGoal(
            action_client or rig.action_client, LLMChatAction.Goal(prompt=prompt, **fields),
            tap=rig.tap, feedback_grace=10.0)
        self.id, self.key = self._goal.id, self._goal.key

    @property
    def handle(self):
        return self._goal.handle

    @property
    def partials(self):
        return self._goal.partials

    def accepted(self, timeout=20.0) -> bool:
        try:
            return self._goal.accepted(timeout)
        except chat_client.ChatTimeout:
            raise AssertionError(f'timed out after {timeout} s waiting for goal response')

    def wait_feedback(self, timeout=20.0):
        assert self.accepted(), 'goal was rejected'
        wait_until(lambda: self.partials, 'first feedback', timeout, log=self.rig.log)

    def cancel(self, timeout=20.0):
        assert self.accepted()
        try:
            return self._goal.cancel(timeout)
        except chat_client.ChatTimeout:
            raise AssertionError(f'timed out after {timeout} s waiting for cancel')

    def result(self, timeout=60.0):
        """
        Return (status name, result) once the goal ended.

        Also waits (bounded) until the feedback tap has every partial of the reply, so callers can
        compare ''.join(partials) with the response.
        """
        assert self.accepted(), 'goal was rejected'
        try:
            outcome = self._goal.result(timeout)
        except chat_client.ChatTimeout:
            raise AssertionError(f'timed out after {timeout} s waiting for goal result')
        # No raise on incomplete feedback: the caller's comparison reports any difference.
        return outcome.status, outcome.result


def proc_threads(rig) -> int:
    return rig.proc.threads()


def assert_streamed_completely(goal, result):
    joined = ''.join(goal.partials)
    assert joined == result.response, (
        f'{len(goal.partials)} partials, {len(joined)} chars != result of '
        f'{len(result.response)} chars ({result.completion_tokens} tokens)')
