"""A chat node process plus the client-side plumbing to talk to it (``Rig``), for the
reliability and robustness suites.

Feedback is collected with a plain subscription to the action's feedback topic (reliable,
depth 20000) instead of ActionClient's feedback callback: rclpy's ActionClient drops the
callback as soon as the result arrives, and result (a service reply) and feedback (a topic)
are not ordered with respect to each other, so a fast reply routinely "loses" its last
partials on the client side. The tap sees every feedback message the node published.
"""
import json
import threading
import time
import uuid
from collections import defaultdict

from chat_harness import ChatNodeProcess, GraphClient, STATUS, wait_until

from rclpy.action import ActionClient
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import String
from unique_identifier_msgs.msg import UUID
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat

# Reader side of the feedback tap. DDS acknowledges a reliable sample when it reaches the
# reader's history, not when Python takes it, so the node's publisher (KEEP_LAST 1000) never
# drops for us; what can overflow is THIS history while the Python executor lags behind a
# fast stream (the tiny model streams thousands of tokens/s). Deep enough for every test.
FEEDBACK_QOS = QoSProfile(depth=20000, reliability=ReliabilityPolicy.RELIABLE)


class Rig:
    """One chat node process plus the client-side plumbing to talk to it.

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
        self._lock = threading.Lock()
        self.partials = defaultdict(list)     # goal uuid bytes -> [partial, ...]
        # tap=False: no feedback subscriber of this process (to see a departed client alone)
        self._tap = node.create_subscription(
            LLMChatAction.Impl.FeedbackMessage, f'/{self.action}/_action/feedback',
            self._on_feedback, FEEDBACK_QOS) if tap else None
        self.stats_msgs = []                  # (monotonic receive time, dict)
        self._stats_sub = node.create_subscription(
            String, f'/{self.name}/stats', self._on_stats, 10)
        self.service_client = node.create_client(LLMChat, self.service)
        # An ActionClient subscribes to the feedback topic too: none without the tap either.
        self.action_client = ActionClient(node, LLMChatAction, self.action) if tap else None
        self._params_client = node.create_client(SetParameters, f'/{self.name}/set_parameters')
        self.closed = False
        if bring_up:
            graph.bring_up(self.name)
            self.wait_servers()

    # ---------------------------------------------------------------- plumbing
    def _on_feedback(self, msg):
        with self._lock:
            self.partials[bytes(msg.goal_id.uuid)].append(msg.feedback.partial)

    def _on_stats(self, msg):
        self.stats_msgs.append((time.monotonic(), json.loads(msg.data)))

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
        for sub in (self._tap, self._stats_sub):
            if sub is not None:
                node.destroy_subscription(sub)
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
        """The newest ~/stats message received after ``since`` (monotonic) that satisfies
        ``predicate``."""
        since = time.monotonic() if since is None else since

        def find():
            for t, snap in reversed(list(self.stats_msgs)):
                if t >= since and predicate(snap):
                    return snap
            return None
        return wait_until(find, 'a matching ~/stats message', timeout, log=self.log)

    # ---------------------------------------------------------------- chat
    def call_async(self, prompt, **fields):
        return self.service_client.call_async(LLMChat.Request(prompt=prompt, **fields))

    def chat(self, prompt, timeout=60.0, **fields):
        return GraphClient.wait_future(self.call_async(prompt, **fields), timeout,
                                       f'reply to {prompt[:30]!r}')

    def goal(self, prompt, **fields) -> 'Goal':
        return Goal(self, prompt, fields)


class Endpoint:
    """Service and action clients for ``rig``'s node on another GraphClient (another DDS
    participant). Feedback is still collected by the rig's tap."""

    def __init__(self, rig: Rig, graph: GraphClient):
        self.rig = rig
        self.service_client = graph.node.create_client(LLMChat, rig.service)
        self.action_client = ActionClient(graph.node, LLMChatAction, rig.action)
        assert self.service_client.wait_for_service(timeout_sec=20.0)
        assert self.action_client.wait_for_server(timeout_sec=20.0)

    def call_async(self, prompt, **fields):
        return self.service_client.call_async(LLMChat.Request(prompt=prompt, **fields))

    def goal(self, prompt, **fields) -> 'Goal':
        return Goal(self.rig, prompt, fields, self.action_client)


class Goal:
    """One action goal with a caller-chosen id, so its feedback can be matched exactly."""

    def __init__(self, rig: Rig, prompt: str, fields: dict, action_client=None):
        self.rig = rig
        self.id = UUID(uuid=list(uuid.uuid4().bytes))
        self.key = bytes(self.id.uuid)
        self.sent = time.monotonic()
        self._send = (action_client or rig.action_client).send_goal_async(
            LLMChatAction.Goal(prompt=prompt, **fields), goal_uuid=self.id)
        self.handle = None

    @property
    def partials(self):
        with self.rig._lock:
            return list(self.rig.partials.get(self.key, ()))

    def accepted(self, timeout=20.0) -> bool:
        if self.handle is None:
            self.handle = GraphClient.wait_future(self._send, timeout, 'goal response')
            if self.handle.accepted:
                # ask for the result at once, as a real client does: the reply then arrives
                # as soon as the goal ends (and not only if the server still exists when we
                # get round to asking)
                self._result = self.handle.get_result_async()
        return self.handle.accepted

    def wait_feedback(self, timeout=20.0):
        assert self.accepted(), 'goal was rejected'
        wait_until(lambda: self.partials, 'first feedback', timeout, log=self.rig.log)

    def cancel(self, timeout=20.0):
        assert self.accepted()
        return GraphClient.wait_future(self.handle.cancel_goal_async(), timeout, 'cancel')

    def result(self, timeout=60.0):
        """(status name, result); also waits (bounded) until the feedback tap has every
        partial of the reply, so callers can compare ''.join(partials) with the response."""
        assert self.accepted(), 'goal was rejected'
        res = GraphClient.wait_future(self._result, timeout, 'goal result')
        text = res.result.response
        # No raise: the caller's comparison reports any difference.
        wait_until(lambda: ''.join(self.partials) == text, 'all feedback', 10.0, raise_=False)
        return STATUS.get(res.status, str(res.status)), res.result


def proc_threads(rig) -> int:
    return rig.proc.threads()


def assert_streamed_completely(goal, result):
    joined = ''.join(goal.partials)
    assert joined == result.response, (
        f'{len(goal.partials)} partials, {len(joined)} chars != result of '
        f'{len(result.response)} chars ({result.completion_tokens} tokens)')
