# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The lifecycle chat node as a real process on a real ROS 2 graph.

Issue "The lifecycle chat node": lifecycle round trip, failed configure, service and action answers
(also through the vendor's example clients, run verbatim), cancel, deactivate mid-stream, sessions,
context overflow, queue full, bad input, UTF-8 safety, and memory/threads after cleanup.

Models: the real SmolLM2-135M-Instruct where the text matters (greedy, temperature 0) and the
tiny random-weight GGUF (test/tiny_gguf.py) where it does not: it never emits EOS, so its
generations run to max_tokens (long enough to cancel, deactivate or fill the queue), and its
output is random bytes (split and invalid UTF-8, control characters).

Node processes: two shared active nodes (module scope: SmolLM2 serving the default
chat_service/chat_action names, and the tiny model with max_queue=1) for tests that do not
change their lifecycle state or configure-time parameters; one process per test otherwise.
Every wait is bounded and generous; nothing asserts on timing.
"""
import json
import os
import re
import subprocess
import sys
import uuid

from br_chat_lifecycle.engine import LlamaEngine, ModelConfig
from br_chat_lifecycle.settings import build
from chat_harness import (call_retry, ChatNodeProcess, GraphClient, REPO_ROOT, STATUS, TRANSITIONS,
                          wait_until)
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

SHARED_VENDOR_DIR = REPO_ROOT.parent / 'shared' / 'vendor_docs'
VENDOR_COPIES = REPO_ROOT / 'test' / 'vendor_clients'   # verbatim copies (see its README)
VENDOR_DIR = SHARED_VENDOR_DIR if SHARED_VENDOR_DIR.is_dir() else VENDOR_COPIES
WAIT_S = 60.0          # generous bound for anything that should happen "at once"
GEN_WAIT_S = 180.0     # bound for a whole generation on a busy 2-core machine


# =============================================================================== helpers


class Node:
    """A chat node process plus the names it serves."""

    def __init__(self, params: dict, default_names: bool = False):
        tag = uuid.uuid4().hex[:8]
        params = dict(params)
        params.setdefault('n_threads', 1)
        if not default_names:  # several nodes may be up at once: never share a service name
            params.setdefault('chat_service_name', f'chat_service_{tag}')
            params.setdefault('chat_action_name', f'chat_action_{tag}')
        self.service = params.get('chat_service_name', 'chat_service')
        self.action = params.get('chat_action_name', 'chat_action')
        self.proc = ChatNodeProcess(params, name=f'chat_node_{tag}')
        self.name = self.proc.name
        self.returncode = None

    def log(self) -> str:
        with open(self.proc.log_path, errors='replace') as f:
            return f.read()

    def wait_log(self, *fragments: str, timeout: float = WAIT_S) -> str:
        return wait_until(lambda: all(f in self.log() for f in fragments) and self.log(),
                          f'log lines containing {fragments}', timeout)

    def stop(self) -> int:
        if self.returncode is None:
            self.returncode = self.proc.stop()
            print(f'----- log of {self.name} (exit code {self.returncode}) -----')
            print(self.log()[-6000:])
        return self.returncode


@pytest.fixture
def start_node():
    """Start node processes for one test; all are stopped (SIGINT) at its end."""
    nodes = []

    def start(params: dict, **kwargs) -> Node:
        node = Node(params, **kwargs)
        nodes.append(node)
        return node
    yield start
    for node in nodes:
        node.stop()


class FeedbackTap:
    """
    Every feedback message of one action, per goal id, in arrival order.

    A plain subscription to the action's feedback topic rather than the ActionClient's
    feedback_callback: rclpy's ActionClient drops feedback that it takes after the goal's
    result (feedback and result travel on different topics, and a fast stream can still be
    queued on the client side when the result arrives). The node publishes every partial
    before the result; this records them all, so a test can wait (bounded) for them.
    """

    def __init__(self, graph: GraphClient, action: str):
        self.partials = {}
        graph.node.create_subscription(
            LLMChatAction.Impl.FeedbackMessage, f'/{action}/_action/feedback', self._on_msg,
            QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE))

    def _on_msg(self, msg):
        self.partials.setdefault(bytes(msg.goal_id.uuid), []).append(msg.feedback.partial)


_taps = {}


class Goal:
    """One goal sent the way a user's ActionClient sends it; feedback from a FeedbackTap."""

    def __init__(self, graph: GraphClient, node: Node, prompt: str, **fields):
        key = (id(graph), node.action)
        if key not in _taps:
            _taps[key] = FeedbackTap(graph, node.action)
        self._tap = _taps[key]
        client = graph._client(LLMChatAction, node.action)
        assert client.wait_for_server(timeout_sec=20.0), f'{node.action} not available'
        self._sent = client.send_goal_async(LLMChatAction.Goal(prompt=prompt, **fields))
        self.handle = None

    def accepted(self, timeout: float = WAIT_S) -> bool:
        if self.handle is None:
            self.handle = GraphClient.wait_future(self._sent, timeout, 'the goal response')
        return self.handle.accepted

    @property
    def partials(self):
        if self.handle is None:
            return []
        return self._tap.partials.get(bytes(self.handle.goal_id.uuid), [])

    def wait_first_partial(self, timeout: float = WAIT_S) -> None:
        assert self.accepted(timeout), 'goal rejected'
        wait_until(lambda: self.partials, 'the first feedback message', timeout)

    def cancel(self, timeout: float = WAIT_S):
        assert self.accepted(), 'goal rejected'
        return GraphClient.wait_future(self.handle.cancel_goal_async(), timeout, 'cancel')

    def result(self, timeout: float = GEN_WAIT_S):
        assert self.accepted(), 'goal rejected'
        res = GraphClient.wait_future(self.handle.get_result_async(), timeout, 'goal result')
        return res.status, res.result


def send_goal(graph: GraphClient, node: Node, prompt: str, **fields) -> Goal:
    return Goal(graph, node, prompt, **fields)


def goal_result(run: Goal, timeout: float = GEN_WAIT_S, joined: bool = True):
    """
    Return (status name, result) once the goal ended.

    With ``joined`` also wait (bounded) until the feedback received adds up to the result: feedback
    and result use different topics.
    """
    status, result = run.result(timeout)
    if joined:
        try:
            wait_until(lambda: ''.join(run.partials) == result.response,
                       'the feedback partials to add up to the result', timeout=15)
        except AssertionError:
            got = ''.join(run.partials)
            raise AssertionError(f'partials ({len(run.partials)}, {len(got)} chars) != result '
                                 f'({len(result.response)} chars): {got[-80:]!r} vs '
                                 f'{result.response[-80:]!r}')
    return STATUS.get(status, status), result


def wait_first_partial(run: Goal, timeout: float = WAIT_S) -> None:
    run.wait_first_partial(timeout)


def set_params(graph: GraphClient, node: Node, **values):
    """Set parameters as ``ros2 param set`` does: rcl_interfaces/srv/SetParameters."""
    req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                            for k, v in values.items()])
    return call_retry(graph._client(SetParameters, f'/{node.name}/set_parameters'), req,
                      f'set_parameters {values}').results


def set_ok(graph: GraphClient, node: Node, **values) -> None:
    for r in set_params(graph, node, **values):
        assert r.successful, r.reason


def get_param(graph: GraphClient, node: Node, name: str):
    res = call_retry(graph._client(GetParameters, f'/{node.name}/get_parameters'),
                     GetParameters.Request(names=[name]), f'get_parameters {name}')
    return Parameter.from_parameter_msg(ParameterMsg(name=name, value=res.values[0])).value


class StatsWatch:
    """Follows the node's ~/stats topic (JSON snapshot published with each diagnostics update)."""

    def __init__(self, graph: GraphClient, node: Node):
        self.latest = None
        graph.node.create_subscription(String, f'/{node.name}/stats', self._on_msg, 10)

    def _on_msg(self, msg):
        self.latest = json.loads(msg.data)

    def wait(self, predicate, what: str, timeout: float = WAIT_S) -> dict:
        """Return the first snapshot published from now on that satisfies ``predicate``."""
        self.latest = None  # never an older one: it may describe an earlier test's requests
        return wait_until(lambda: self.latest is not None and predicate(self.latest)
                          and self.latest, f'~/stats with {what}', timeout)


def prime_lifecycle(graph: GraphClient, node: Node) -> None:
    """
    Make first contact with a freshly started node.

    Each lifecycle/parameter client the tests use gets one answered request, using only requests
    that are safe to repeat (see call_retry). The node must be unconfigured: 'activate' is refused
    there, state unchanged.
    """
    n = node.name
    state = call_retry(graph._client(GetState, f'/{n}/get_state'), GetState.Request(),
                       'get_state')
    assert state.current_state.label == 'unconfigured', state
    call_retry(graph._client(GetAvailableTransitions, f'/{n}/get_available_transitions'),
               GetAvailableTransitions.Request(), 'get_available_transitions')
    refused = ChangeState.Request()
    refused.transition.id = TRANSITIONS['activate']
    assert not call_retry(graph._client(ChangeState, f'/{n}/change_state'), refused,
                          'change_state activate (refused while unconfigured)').success
    call_retry(graph._client(SetParameters, f'/{n}/set_parameters'), SetParameters.Request(),
               'set_parameters (none)')
    call_retry(graph._client(GetParameters, f'/{n}/get_parameters'), GetParameters.Request(),
               'get_parameters (none)')


def prime_serving(graph: GraphClient, node: Node) -> None:
    """
    Make first contact with the chat service and action of an active node.

    The node's live max_tokens must be small. Sends a service call, then a goal whose feedback
    reaches our FeedbackTap, a cancel and a result; lost first requests are simply sent again.
    """
    call_retry(graph._client(LLMChat, node.service), LLMChat.Request(prompt='hi'),
               'chat_service', per_try=20.0)
    for _ in range(4):
        run = send_goal(graph, node, 'hi')
        try:
            run.wait_first_partial(timeout=8.0)
            break
        except AssertionError:  # goal request or early feedback lost: try a new goal
            continue
    else:
        raise AssertionError('no goal of 4 got its feedback through')
    for _ in range(4):
        future = run.handle.cancel_goal_async()
        if wait_until(future.done, 'cancel response', 5.0, raise_=False):
            break
    for _ in range(4):
        future = run.handle.get_result_async()
        if wait_until(future.done, 'goal result', 10.0, raise_=False):
            return
    raise AssertionError('no goal result')


def bring_up(graph: GraphClient, node: Node) -> None:
    prime_lifecycle(graph, node)
    assert graph.change_state(node.name, 'configure'), f'configure failed:\n{node.log()}'
    assert graph.change_state(node.name, 'activate'), f'activate failed:\n{node.log()}'
    prime_serving(graph, node)


def user(text: str):
    return [{'role': 'user', 'content': text}]


def run_vendor_client(script: str, *args: str, timeout: float = 90.0, attempts: int = 2):
    """
    Run one of the vendor's example clients unchanged, in its own process.

    The clients send their one request as soon as they see the server and wait forever for the
    reply: if that first request is lost to the DDS discovery race (see call_retry), the process is
    killed after ``timeout`` and run once more.
    """
    path = VENDOR_DIR / script
    assert path.is_file(), f'vendor client not found: {path}'
    for attempt in range(attempts):
        try:
            return subprocess.run([sys.executable, str(path), *args], capture_output=True,
                                  text=True, timeout=timeout, cwd=str(VENDOR_DIR),
                                  env=dict(os.environ, PYTHONUNBUFFERED='1'))
        except subprocess.TimeoutExpired as e:  # subprocess.run has killed it
            print(f'{script} attempt {attempt + 1} timed out after {timeout} s; stdout: '
                  f'{e.stdout!r} stderr: {e.stderr!r}')
    raise AssertionError(f'{script} did not finish in {attempts} attempts of {timeout} s')


# =============================================================================== shared nodes
@pytest.fixture(scope='module')
def smol_node(graph, default_model_path):
    """SmolLM2, greedy, serving the default names (what the vendor clients call)."""
    node = Node({'model_path': default_model_path, 'temperature': 0.0, 'max_tokens': 64,
                 'n_ctx': 2048}, default_names=True)
    try:
        bring_up(graph, node)
        yield node
    finally:
        node.stop()


@pytest.fixture(scope='module')
def tiny_node(graph, tiny_model_path):
    """
    Start a node with the tiny model, room for long generations and max_queue=1.

    Tests set the live parameters they need (max_tokens, temperature, seed) first.
    """
    node = Node({'model_path': tiny_model_path, 'n_ctx': 8192, 'n_parallel': 1, 'max_queue': 1,
                 'max_tokens': 16, 'diagnostic_updater.period': 0.2})
    try:
        bring_up(graph, node)
        node.stats = StatsWatch(graph, node)
        yield node
    finally:
        node.stop()


@pytest.fixture(scope='module')
def smol_tokens(default_model_path):
    """Count prompt tokens exactly as the node does (same model, same template code)."""
    engine = LlamaEngine(build(ModelConfig, model_path=default_model_path, n_ctx=512, n_threads=1))
    yield lambda messages: len(engine.prompt_tokens(messages))
    engine.close()


# =============================================================================== 1 lifecycle
def test_lifecycle_round_trip_with_the_standard_services(graph, start_node, tiny_model_path):
    node = start_node({'model_path': tiny_model_path, 'max_tokens': 8, 'n_ctx': 512})
    n = node.name
    prime_lifecycle(graph, node)

    def state_is(label, transitions):
        assert graph.get_state(n) == label
        assert set(graph.available_transitions(n)) == set(transitions), label

    state_is('unconfigured', {'configure', 'shutdown'})
    assert not graph.change_state(n, 'activate'), 'activate from unconfigured must fail'
    state_is('unconfigured', {'configure', 'shutdown'})

    assert graph.change_state(n, 'configure')
    state_is('inactive', {'activate', 'cleanup', 'shutdown'})
    assert graph.change_state(n, 'activate')
    state_is('active', {'deactivate', 'shutdown'})
    prime_serving(graph, node)
    assert graph.chat('hi', service=node.service).success
    assert graph.change_state(n, 'deactivate')
    state_is('inactive', {'activate', 'cleanup', 'shutdown'})
    assert graph.change_state(n, 'cleanup')
    state_is('unconfigured', {'configure', 'shutdown'})
    node.wait_log('model released')

    # A second life: configure again, and both interfaces work.
    assert graph.change_state(n, 'configure')
    assert graph.change_state(n, 'activate')
    state_is('active', {'deactivate', 'shutdown'})
    prime_serving(graph, node)  # the servers are new: first contact again
    reply = graph.chat('hello again', service=node.service)
    assert reply.success and reply.completion_tokens == 8, reply
    status, result = goal_result(send_goal(graph, node, 'and a goal'), joined=False)
    assert status == 'succeeded' and result.completion_tokens == 8

    assert graph.change_state(n, 'shutdown_active')
    assert graph.get_state(n) == 'finalized'
    assert graph.available_transitions(n) == []
    assert not graph.change_state(n, 'configure'), 'nothing leaves finalized'
    # The servers were destroyed with the model.
    wait_until(lambda: graph.node.count_services(f'/{node.service}') == 0,
               f'the /{node.service} server to disappear from the graph')
    assert node.proc.alive(), 'finalized is a state, the process keeps running'
    assert node.stop() == 0, 'the node should exit cleanly on SIGINT'
    assert 'Traceback' not in node.log()


# =============================================================================== 2 bad configure
def test_configure_fails_on_a_bad_model_path_then_succeeds(graph, start_node, tmp_path,
                                                           tiny_model_path):
    missing = str(tmp_path / 'no_such_model.gguf')
    junk = tmp_path / 'junk.gguf'
    junk.write_text('definitely not a model\n' * 50)
    folder = tmp_path / 'a_directory'
    folder.mkdir()
    node = start_node({'model_path': missing})
    prime_lifecycle(graph, node)
    cases = [(missing, 'model file not found'), (str(junk), 'not a GGUF model file'),
             (str(folder), 'not a regular file')]
    for i, (path, reason) in enumerate(cases):
        if i:  # what `ros2 param set` does
            set_ok(graph, node, model_path=path)
        assert not graph.change_state(node.name, 'configure'), path
        assert graph.get_state(node.name) == 'unconfigured'
        line = next((ln for ln in node.wait_log(reason).splitlines() if reason in ln), '')
        assert 'configure failed' in line and path in line, line

    set_ok(graph, node, model_path=tiny_model_path)
    assert graph.change_state(node.name, 'configure')
    assert graph.get_state(node.name) == 'inactive'
    node.wait_log('configured: loaded ' + tiny_model_path)


def test_invalid_parameters_fail_configure_and_are_refused_live(graph, start_node,
                                                                tiny_model_path):
    node = start_node({'model_path': tiny_model_path, 'n_ctx': -5})
    prime_lifecycle(graph, node)
    assert not graph.change_state(node.name, 'configure')
    assert graph.get_state(node.name) == 'unconfigured'
    line = next(ln for ln in node.wait_log('configure failed').splitlines()
                if 'configure failed' in ln)
    assert 'invalid parameters' in line and 'n_ctx' in line and '-5' in line, line

    for values, name in [({'temperature': -1.0}, 'temperature'), ({'n_ctx': -5}, 'n_ctx'),
                         ({'top_p': 2.0}, 'top_p'), ({'max_tokens': 0}, 'max_tokens')]:
        (result,) = set_params(graph, node, **values)
        assert not result.successful, values
        assert name in result.reason, result.reason
    assert get_param(graph, node, 'temperature') == pytest.approx(0.2)  # unchanged

    set_ok(graph, node, n_ctx=512)
    (result,) = set_params(graph, node, max_tokens=600)    # cross-check against n_ctx
    assert not result.successful and 'n_ctx' in result.reason, result.reason
    assert graph.change_state(node.name, 'configure')
    assert graph.get_state(node.name) == 'inactive'


# =============================================================================== 3 answers
def test_service_answers_sensibly(graph, smol_node):
    reply = graph.chat('What is the capital of France?', service=smol_node.service)
    assert reply.success and reply.error == '', reply
    assert 'Paris' in reply.response, reply.response
    assert reply.finish_reason in ('stop', 'length')
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.latency_s > 0


def test_vendor_copies_are_verbatim():
    if not SHARED_VENDOR_DIR.is_dir():
        pytest.skip(f'{SHARED_VENDOR_DIR} is absent: the in-repo copies are used')
    for name in ('llm_client.py', 'llm_client_action.py'):
        assert (VENDOR_COPIES / name).read_bytes() == (SHARED_VENDOR_DIR / name).read_bytes()


def test_vendor_service_client_verbatim(smol_node):
    proc = run_vendor_client('llm_client.py')
    m = re.search(r'模型回复:(.*)', proc.stdout)
    assert m and m.group(1).strip(), f'stdout: {proc.stdout!r} stderr: {proc.stderr[-2000:]!r}'
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_vendor_action_client_verbatim(smol_node):
    proc = run_vendor_client('llm_client_action.py')   # its default prompt: 你好，请介绍一下你自己
    m = re.search(r'\[Result\](.*)', proc.stdout, re.S)
    assert m and m.group(1).strip(), f'stdout: {proc.stdout!r} stderr: {proc.stderr[-2000:]!r}'
    streamed = proc.stdout[:m.start()].strip()
    assert streamed, 'the client printed no feedback partials'


# =============================================================================== 4 streaming
def test_action_streams_partials_that_add_up_to_the_result(graph, smol_node):
    run = send_goal(graph, smol_node, 'Write three short sentences about robots.')
    status, result = goal_result(run)
    assert status == 'succeeded' and result.success, result
    assert len(run.partials) >= 3
    assert result.response.strip() and ''.join(run.partials) == result.response
    assert result.completion_tokens >= len(run.partials)  # a partial is at least one token
    assert result.finish_reason in ('stop', 'length')
    assert 0 < result.time_to_first_token_s <= result.latency_s
    assert result.prompt_tokens > 0


# =============================================================================== 5 cancel
def test_cancel_mid_stream_returns_the_text_so_far(graph, tiny_node):
    set_ok(graph, tiny_node, max_tokens=4000, temperature=0.2, seed=-1)
    run = send_goal(graph, tiny_node, 'Tell me everything.')
    wait_first_partial(run)
    response = run.cancel()
    assert len(response.goals_canceling) == 1
    status, result = goal_result(run)
    assert status == 'canceled'
    assert result.finish_reason == 'cancelled' and not result.success
    assert 'cancel' in result.error
    assert result.response and ''.join(run.partials) == result.response
    assert 0 < result.completion_tokens < 4000


# =============================================================================== 6 deactivate
def test_deactivate_mid_stream_ends_running_and_queued_work(graph, start_node,
                                                            tiny_model_path):
    node = start_node({'model_path': tiny_model_path, 'n_ctx': 8192, 'max_tokens': 8,
                       'n_parallel': 1, 'max_queue': 4, 'diagnostic_updater.period': 0.2})
    bring_up(graph, node)
    stats = StatsWatch(graph, node)
    set_ok(graph, node, max_tokens=8000)

    run = send_goal(graph, node, 'A long answer, please.')
    wait_first_partial(run)
    queued = graph.chat_request('I wait behind the goal', service=node.service)
    stats.wait(lambda s: s['queue_depth'] == 1 and s['generating'], 'one request queued')

    assert graph.change_state(node.name, 'deactivate', timeout=WAIT_S)
    assert graph.get_state(node.name) == 'inactive'

    status, result = goal_result(run)
    assert status == 'aborted'
    assert result.finish_reason == 'cancelled' and not result.success
    assert 'deactivated' in result.error, result.error
    assert result.response and 0 < result.completion_tokens < 8000

    reply = graph.wait_future(queued, WAIT_S, 'the queued service reply')
    assert not reply.success and reply.finish_reason == 'cancelled'
    assert 'deactivated' in reply.error, reply.error

    # Inactive: the service answers with a refusal, new goals are rejected.
    reply = graph.chat('anyone there?', service=node.service)
    assert not reply.success and 'inactive' in reply.error, reply.error
    assert send_goal(graph, node, 'hello?').accepted() is False

    set_ok(graph, node, max_tokens=8)
    assert graph.change_state(node.name, 'activate')
    reply = graph.chat('back again', service=node.service)
    assert reply.success and reply.completion_tokens == 8, reply
    status, result = goal_result(send_goal(graph, node, 'and a goal'))
    assert status == 'succeeded' and result.completion_tokens == 8


# =============================================================================== 7 sessions
def test_sessions_keep_separate_histories(graph, smol_node, smol_tokens):
    a, b = f'alice-{uuid.uuid4().hex[:6]}', f'bob-{uuid.uuid4().hex[:6]}'
    question = 'What is my name?'

    def chat(prompt, **fields):
        reply = graph.chat(prompt, service=smol_node.service, **fields)
        assert reply.success, reply.error
        return reply

    single = smol_tokens(user(question))
    a1 = chat('My name is Alice.', session_id=a)
    assert a1.prompt_tokens == smol_tokens(user('My name is Alice.'))
    b1 = chat('My name is Bob.', session_id=b)
    a2 = chat(question, session_id=a)
    b2 = chat(question, session_id=b)

    a_history = [{'role': 'user', 'content': 'My name is Alice.'},
                 {'role': 'assistant', 'content': a1.response}]
    b_history = [{'role': 'user', 'content': 'My name is Bob.'},
                 {'role': 'assistant', 'content': b1.response}]
    # Each follow-up carries its own session's history, and only that.
    assert a2.prompt_tokens == smol_tokens(a_history + user(question)) > single
    assert b2.prompt_tokens == smol_tokens(b_history + user(question)) > single
    assert a2.prompt_tokens != smol_tokens(a_history + b_history + user(question))

    # Stateless: a fresh single turn.
    assert chat(question).prompt_tokens == single
    # A third turn includes both earlier turns of A.
    a3 = chat('Thanks!', session_id=a)
    assert a3.prompt_tokens == smol_tokens(
        a_history + [{'role': 'user', 'content': question},
                     {'role': 'assistant', 'content': a2.response}] + user('Thanks!'))

    # reset_session: the history is forgotten before answering.
    assert chat(question, session_id=a, reset_session=True).prompt_tokens == single
    # A reset-only request (blank prompt) succeeds and clears the session.
    reset = chat('  ', session_id=b, reset_session=True)
    assert reset.response == '' and reset.finish_reason == 'stop'
    assert chat(question, session_id=b).prompt_tokens == single


# =============================================================================== 8 overflow
def test_context_overflow_drops_oldest_turns_or_refuses(graph, start_node, tiny_model_path):
    n_ctx, max_tokens = 256, 32
    node = start_node({'model_path': tiny_model_path, 'n_ctx': n_ctx,
                       'max_tokens': max_tokens})
    bring_up(graph, node)
    budget = n_ctx - max_tokens
    counter = LlamaEngine(build(ModelConfig, model_path=tiny_model_path, n_ctx=n_ctx, n_threads=1))
    try:
        history = []
        for i in range(8):
            prompt = f'turn {i}: hello robot, what can you do?'
            reply = graph.chat(prompt, service=node.service, session_id='long')
            assert reply.success, f'turn {i}: {reply.error}'
            assert 0 < reply.prompt_tokens <= budget, (i, reply.prompt_tokens)
            assert reply.completion_tokens == max_tokens
            history += user(prompt)
            full = len(counter.prompt_tokens(history))
            history.append({'role': 'assistant', 'content': reply.response})
        # Without dropping turns the last prompt would not have fitted.
        assert full > budget, f'the test should overflow the context ({full} <= {budget})'
        node.wait_log("session 'long': dropped")

        too_long = 'x' * 1000   # under max_prompt_chars (4000) but ~1000 tokens
        assert len(counter.prompt_tokens(user(too_long))) > budget
        for session in ('', 'long'):
            reply = graph.chat(too_long, service=node.service, session_id=session)
            assert not reply.success and reply.finish_reason == 'error'
            assert f'n_ctx={n_ctx}' in reply.error and 'does not fit' in reply.error, \
                reply.error
        # The session still works afterwards.
        assert graph.chat('still there?', service=node.service, session_id='long').success
    finally:
        counter.close()


# =============================================================================== 9 queue full
def test_queue_full_refuses_at_once_and_answers_everyone(graph, tiny_node):
    set_ok(graph, tiny_node, max_tokens=1500, temperature=0.2, seed=-1)
    stats = tiny_node.stats
    before = stats.wait(lambda s: not s['generating'] and s['queue_depth'] == 0, 'idle')

    futures = [graph.chat_request(f'request {i}', service=tiny_node.service)
               for i in range(4)]
    # The two beyond capacity (1 generating + max_queue=1 waiting) are answered first.
    wait_until(lambda: sum(f.done() for f in futures) >= 2, 'two replies')
    early = [f.result() for f in futures if f.done()]
    assert len(early) == 2, [r.error for r in early]
    for reply in early:
        assert not reply.success and 'queue full' in reply.error, reply.error
        assert 'max_queue=1' in reply.error
    wait_until(lambda: all(f.done() for f in futures), 'all replies', GEN_WAIT_S)
    replies = [f.result() for f in futures]
    ok = [r for r in replies if r.success]
    assert len(ok) == 2 and all(r.completion_tokens == 1500 for r in ok)

    after = stats.wait(lambda s: s['requests_total'] >= before['requests_total'] + 4,
                       'the four requests counted')
    assert after['requests_total'] == before['requests_total'] + 4  # one outcome each
    assert after['requests_refused'] == before['requests_refused'] + 2
    assert after['requests_ok'] == before['requests_ok'] + 2


def test_queue_full_is_shared_by_service_and_action(graph, tiny_node):
    stats = tiny_node.stats
    # 8000 tokens: the running goal must outlast everything below on a loaded machine
    set_ok(graph, tiny_node, max_tokens=8000, temperature=0.2, seed=-1)
    running = send_goal(graph, tiny_node, 'I run first')
    wait_first_partial(running)
    set_ok(graph, tiny_node, max_tokens=200)
    waiting = graph.chat_request('I wait', service=tiny_node.service)
    stats.wait(lambda s: s['queue_depth'] == 1 and s['generating'], 'one request waiting')

    beyond = send_goal(graph, tiny_node, 'no room for me')
    assert beyond.accepted(), 'a goal beyond capacity is accepted, then aborted'
    status, result = goal_result(beyond)
    assert status == 'aborted' and 'queue full' in result.error, result
    assert result.finish_reason == 'error' and result.response == ''
    reply = graph.chat('no room for me either', service=tiny_node.service)
    assert not reply.success and 'queue full' in reply.error, reply.error

    running.cancel()
    status, result = goal_result(running)
    assert status == 'canceled'
    reply = graph.wait_future(waiting, GEN_WAIT_S, 'the waiting request')
    assert reply.success and reply.completion_tokens == 200, reply


# =============================================================================== 10 bad input
@pytest.mark.parametrize('prompt, fields, fragment', [
    ('', {}, 'empty prompt'),
    ('  \n\t ', {}, 'empty prompt'),
    ('', {'reset_session': True}, 'empty prompt'),   # a reset needs a session id
    ('x' * 4001, {}, 'max_prompt_chars=4000'),
    ('hello', {'session_id': 'has spaces'}, 'invalid session_id'),
    ('hello', {'session_id': 's' * 200}, 'invalid session_id'),
    ('hello', {'response_format': 'yaml'}, 'response_format'),
])
def test_bad_input_is_refused_with_a_clear_error(graph, smol_node, prompt, fields, fragment):
    reply = graph.chat(prompt, service=smol_node.service, **fields)
    assert not reply.success and reply.finish_reason == 'error'
    assert fragment in reply.error, reply.error
    assert reply.response == '' and reply.completion_tokens == 0


def test_bad_goal_is_aborted_and_the_node_keeps_serving(graph, smol_node):
    status, result = goal_result(send_goal(graph, smol_node, '   '))
    assert status == 'aborted' and 'empty prompt' in result.error
    reply = graph.chat('Say hello.', service=smol_node.service)
    assert reply.success and reply.response.strip()


# =============================================================================== 11 UTF-8
def test_utf8_stream_smol_chinese(graph, smol_node):
    run = send_goal(graph, smol_node, '你好，请介绍一下你自己')
    status, result = goal_result(run)
    assert status == 'succeeded', result
    assert any('\u4e00' <= ch <= '\u9fff' for ch in result.response), result.response
    assert len(run.partials) > 3
    # A partial never splits a character: it holds no U+FFFD that the whole reply does not
    # (the model itself may emit an invalid byte sequence, which decodes to U+FFFD).
    replaced = result.response.count('\ufffd')
    assert sum(p.count('\ufffd') for p in run.partials) == replaced, run.partials
    for p in run.partials:
        assert p, run.partials
        p.encode('utf-8')
    assert ''.join(run.partials) == result.response


def test_utf8_stream_tiny_random_bytes(graph, tiny_node):
    # Sampling at temperature 1 makes the random model emit all kinds of bytes: pieces of
    # multi-byte characters, invalid sequences, control characters and NULs.
    set_ok(graph, tiny_node, max_tokens=600, temperature=1.0, seed=3)
    run = send_goal(graph, tiny_node, '你好，请介绍一下你自己')
    status, result = goal_result(run)
    assert status == 'succeeded' and result.completion_tokens == 600
    assert len(run.partials) > 100
    for p in run.partials:
        assert p, 'empty partial'
        p.encode('utf-8')
        assert '\x00' not in p
    # Invalid bytes are U+FFFD in the reply too; streaming adds none of its own.
    assert ''.join(run.partials) == result.response
    assert ''.join(run.partials).count('\ufffd') == result.response.count('\ufffd')


def test_feedback_batching_sends_fewer_partials_and_loses_nothing(graph, tiny_node):
    set_ok(graph, tiny_node, max_tokens=600, temperature=1.0, seed=3,
           feedback_min_interval_s=0.0)
    per_token = send_goal(graph, tiny_node, 'batch me')
    status, unbatched = goal_result(per_token)
    assert status == 'succeeded'
    set_ok(graph, tiny_node, feedback_min_interval_s=0.05)
    try:
        batched_run = send_goal(graph, tiny_node, 'batch me')
        status, batched = goal_result(batched_run)   # waits until partials == response
    finally:
        set_ok(graph, tiny_node, feedback_min_interval_s=0.0)
    assert status == 'succeeded'
    assert batched.completion_tokens == unbatched.completion_tokens == 600
    assert 1 <= len(batched_run.partials) < len(per_token.partials)
    assert ''.join(batched_run.partials) == batched.response


# =============================================================================== 13 memory
def test_cleanup_returns_the_memory_and_joins_the_worker(graph, start_node, tiny_model_path,
                                                         default_model_path):
    node = start_node({'model_path': tiny_model_path, 'max_tokens': 16, 'n_ctx': 1024})
    n = node.name
    # Warm-up cycle with the tiny model: rclpy's executor threads and Python's allocator
    # grow on first use; that growth is not what this test measures.
    bring_up(graph, node)
    futures = [graph.chat_request(f'warm {i}', service=node.service) for i in range(3)]
    wait_until(lambda: all(f.done() for f in futures), 'warm-up replies', GEN_WAIT_S)
    assert graph.change_state(n, 'deactivate') and graph.change_state(n, 'cleanup')

    readings = {}
    for use_mmap in (True, False):
        set_ok(graph, node, model_path=default_model_path, use_mmap=use_mmap)
        before = (node.proc.rss_mb(), node.proc.threads())
        graph.bring_up(n)
        for prompt in ('Hello!', 'Name a colour.'):  # new server: the first may need a resend
            assert call_retry(graph._client(LLMChat, node.service), LLMChat.Request(
                prompt=prompt), 'chat', per_try=30.0).success
        loaded = (node.proc.rss_mb(), node.proc.threads())
        assert graph.change_state(n, 'deactivate') and graph.change_state(n, 'cleanup')
        after = (node.proc.rss_mb(), node.proc.threads())
        readings[use_mmap] = (before, loaded, after)
        print(f'use_mmap={use_mmap}: RSS {before[0]:.0f} -> {loaded[0]:.0f} -> {after[0]:.0f}'
              f' MB, threads {before[1]} -> {loaded[1]} -> {after[1]}')
        added = loaded[0] - before[0]
        assert added > 50, f'the model should add memory (use_mmap={use_mmap}): {readings}'
        assert after[0] - before[0] < 0.25 * added, f'RSS not returned: {readings}'
        assert abs(after[1] - before[1]) <= 1, f'threads not joined: {readings}'
        assert loaded[1] >= before[1] + 1, 'the chat worker thread should exist while active'
    # A thread leaked per configure/cleanup cycle would show as +2 over the two cycles.
    assert readings[False][2][1] - readings[True][0][1] <= 1, f'threads accumulate: {readings}'
    node.wait_log('model released')
