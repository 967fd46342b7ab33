# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
tts_bridge on a real graph: the real bridge process, a fake text-to-speech service.

  FakeTts        a real rclpy TextToSpeech service in the test process that records every
                 text it is asked to speak (optionally slowly, optionally failing);
  BridgeProcess  ``python -m br_chat_lifecycle.tts_bridge`` as a subprocess;
  the chat side  the REAL chat node (chat_rig.Rig: SmolLM2, greedy), or, where the test needs
                 a reply rclpy cannot lose on its own, a scripted LLMChatAction server (a real
                 rclpy action server in the test process) that sends only some of the reply
                 as feedback.

The bridge's own feedback is collected with a tap on its feedback topic (chat_rig.Goal), so
"spoken in order and complete" is checked on every piece: the texts the fake TTS received
are the bridge's partials (minus whitespace-only ones), in order, and the partials
concatenate to the result's response, which is the chat reply.

Run: python -m pytest test/test_tts_bridge.py -q   (about a minute on 2 cores)
"""
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, str(Path(__file__).resolve().parent))

from br_chat_lifecycle.client import FeedbackTap, make_action_client  # noqa: E402
from br_chat_lifecycle.sentence_stream import split_sentences  # noqa: E402
from chat_harness import GraphClient, REPO_ROOT, wait_until  # noqa: E402
from chat_rig import Goal, Rig  # noqa: E402
from jobot_ai_msgs.action import LLMChatAction  # noqa: E402
from jobot_ai_msgs.srv import TextToSpeech  # noqa: E402
import pytest  # noqa: E402
from rclpy.action import ActionServer, CancelResponse  # noqa: E402
from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

pytestmark = pytest.mark.slow

ENGLISH = 'Write three sentences about robots.'
CHINESE = '今天天气很好。'        # greedy SmolLM2: Chinese with ！，。 (see test_sentence_node)
LONG = 'Tell me a long story about a robot who learns to paint.'


sentences = split_sentences


class FakeTts:
    """A TextToSpeech service that records what it is asked to speak."""

    def __init__(self, graph: GraphClient, name: str):
        self.name = name
        self.texts = []            # texts of the calls that returned (spoken)
        self.started = []          # texts of every call received
        self.delay_s = 0.0
        self.fail_on = None        # substring: answer success=false for such a text
        self._lock = threading.Lock()
        self.service = graph.node.create_service(TextToSpeech, name, self._speak,
                                                 callback_group=ReentrantCallbackGroup())

    def _speak(self, request, response):
        with self._lock:
            self.started.append(request.text)
        time.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in request.text:
            response.success, response.error = False, 'speaker unplugged'
            return response
        with self._lock:
            self.texts.append(request.text)
        response.success = True
        return response

    def reset(self, delay_s=0.0, fail_on=None):
        with self._lock:
            self.texts, self.started = [], []
        self.delay_s, self.fail_on = delay_s, fail_on


class BridgeProcess:
    """A tts_bridge process, with the client side to talk to it (``Goal`` compatible)."""

    def __init__(self, graph: GraphClient, chat_action: str, tts_service: str, **params):
        self.name = f'tts_bridge_{uuid.uuid4().hex[:8]}'
        self.graph = graph
        self._dir = tempfile.mkdtemp(prefix='tts_bridge_')
        self.log_path = os.path.join(self._dir, 'bridge.log')
        self._log = open(self.log_path, 'w')
        args = []
        for key, value in dict(chat_action=chat_action, tts_service=tts_service,
                               **params).items():
            args += ['-p', f'{key}:={value}']
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_LOGGING_BUFFERED_STREAM='0')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'br_chat_lifecycle.tts_bridge', '--ros-args',
             '-r', f'__node:={self.name}', *args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT), env=env)
        node = graph.node
        self.tap = FeedbackTap(node, f'/{self.name}/ask')   # what chat_rig.Goal reads
        self.action_client = make_action_client(node, f'/{self.name}/ask')
        self.stop_client = node.create_client(Trigger, f'/{self.name}/stop')
        assert self.action_client.wait_for_server(timeout_sec=30), \
            f'bridge not available\n{self.log()[-2000:]}'
        # the feedback tap must be matched too, or the first partials are lost for good
        wait_until(self.tap.connected, 'the bridge feedback publisher matched', 30,
                   log=self.log)

    def log(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def goal(self, prompt, **fields) -> Goal:
        return Goal(self, prompt, fields)

    def stop(self):
        assert self.stop_client.wait_for_service(timeout_sec=10)
        return GraphClient.wait_future(self.stop_client.call_async(Trigger.Request()), 10,
                                       '~/stop')

    def close(self):
        node = self.graph.node
        self.tap.destroy()
        node.destroy_client(self.stop_client)
        self.action_client.destroy()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope='module')
def world(default_model_path):
    """One graph client, the real chat node, a fake TTS and a bridge between them."""
    graph = GraphClient()
    rig = Rig(graph, {'model_path': default_model_path, 'temperature': 0.0,
                      'max_tokens': 72, 'n_ctx': 1024})
    tts = FakeTts(graph, f'/fake_tts_{uuid.uuid4().hex[:8]}')
    # server_timeout_s: a just-started bridge may take more than the default 5 s to discover
    # the chat node's action server on a loaded machine.
    bridge = BridgeProcess(graph, rig.action, tts.name, server_timeout_s=30.0)
    try:
        yield graph, rig, tts, bridge
    finally:
        bridge.close()
        rig.close()
        graph.close()


def check_spoken(goal, result, tts):
    """Everything the bridge reported spoken reached the TTS, in order, and is the reply."""
    partials = goal.partials
    assert ''.join(partials) == result.response
    assert tts.texts == [p for p in partials if p.strip()]
    return partials


# ====================================================================== real chat node
@pytest.mark.parametrize('prompt', [ENGLISH, CHINESE], ids=['english', 'chinese'])
def test_every_sentence_spoken_in_order(world, prompt):
    graph, rig, tts, bridge = world
    tts.reset()
    goal = bridge.goal(prompt, stream_unit='token')   # the bridge asks for sentences anyway
    status, result = goal.result(timeout=180)
    assert status == 'succeeded' and result.success, f'{result.error}\n{bridge.log()[-2000:]}'
    partials = check_spoken(goal, result, tts)
    print(f'\n{prompt!r}: spoken {tts.texts}')
    assert len(tts.texts) >= 2
    assert partials == sentences(result.response)        # one call per sentence
    assert result.completion_tokens > 0 and result.finish_reason in ('stop', 'length')


def test_slow_tts_keeps_order_and_speaks_everything(world):
    graph, rig, tts, bridge = world
    tts.reset(delay_s=0.4)
    goal = bridge.goal(ENGLISH)
    status, result = goal.result(timeout=180)
    assert status == 'succeeded' and result.success, result.error
    check_spoken(goal, result, tts)
    assert goal.partials == sentences(result.response)
    assert tts.started == tts.texts          # one call at a time, none abandoned


def _cancelled_stats(rig):
    return rig.stats(predicate=lambda s: True)['requests_cancelled']


@pytest.mark.parametrize('how', ['cancel', 'stop'])
def test_cancel_or_stop_stops_speaking(world, how):
    graph, rig, tts, bridge = world
    rig.set_params(max_tokens=300)
    cancelled_before = _cancelled_stats(rig)
    tts.reset(delay_s=1.0)
    try:
        goal = bridge.goal(LONG)
        assert goal.accepted()
        wait_until(lambda: tts.started, 'the first sentence sent to the TTS', 120,
                   log=bridge.log)
        if how == 'cancel':
            goal.cancel()
        else:
            assert bridge.stop().success
        status, result = goal.result(timeout=60)
    finally:
        rig.set_params(max_tokens=72)
    if how == 'cancel':
        assert status == 'canceled'
    else:
        assert status == 'aborted' and 'stopped by ~/stop' in result.error, result.error
    assert not result.success and result.finish_reason == 'cancelled'
    # the chat goal was cancelled too (the long story was not generated to the end)
    rig.stats(predicate=lambda s: s['requests_cancelled'] > cancelled_before, timeout=20)
    assert result.completion_tokens < 300
    calls = len(tts.started)
    time.sleep(1.5)                          # a further call would arrive within this
    assert len(tts.started) == calls, tts.started
    # the abandoned sentence (being spoken at the stop) is not reported as spoken
    assert ''.join(goal.partials) == result.response
    assert [p for p in goal.partials if p.strip()] == tts.texts[:len(
        [p for p in goal.partials if p.strip()])]
    assert len(tts.started) <= 2


def test_stop_with_nothing_running(world):
    graph, rig, tts, bridge = world
    answer = bridge.stop()
    assert answer.success and answer.message == 'nothing to stop'


# ====================================================================== scripted chat action
class ScriptedChat:
    """
    A real LLMChatAction server: publishes ``partials`` as feedback, answers ``response``.

    The response may hold more: text rclpy's ActionClient "lost".
    """

    def __init__(self, graph: GraphClient):
        self.name = f'/scripted_chat_{uuid.uuid4().hex[:8]}'
        self.partials, self.response = [], ''
        self.hold = threading.Event()      # cleared: the goal waits until set or cancelled
        self.hold.set()
        self.goals = []
        self.server = ActionServer(graph.node, LLMChatAction, self.name, self._execute,
                                   cancel_callback=lambda h: CancelResponse.ACCEPT,
                                   callback_group=ReentrantCallbackGroup())

    def _execute(self, handle):
        self.goals.append(handle.request)
        for partial in self.partials:
            handle.publish_feedback(LLMChatAction.Feedback(partial=partial))
        deadline = time.monotonic() + 30
        while not self.hold.wait(0.02) and time.monotonic() < deadline:
            if handle.is_cancel_requested:
                handle.canceled()
                return LLMChatAction.Result(response=''.join(self.partials),
                                            finish_reason='cancelled')
        handle.succeed()
        return LLMChatAction.Result(response=self.response, success=True,
                                    finish_reason='stop', completion_tokens=7)


@pytest.fixture(scope='module')
def scripted():
    graph = GraphClient()
    chat = ScriptedChat(graph)
    tts = FakeTts(graph, f'/fake_tts_{uuid.uuid4().hex[:8]}')
    bridge = BridgeProcess(graph, chat.name, tts.name, tts_timeout_s=5.0)
    try:
        yield chat, tts, bridge
    finally:
        bridge.close()
        graph.close()


def test_tail_missing_from_feedback_is_spoken_from_the_result(scripted):
    chat, tts, bridge = scripted
    tts.reset()
    chat.partials = ['First sentence.', ' Second one!']
    chat.response = 'First sentence. Second one! Third, at 3.5 m? 第四句。最后'
    goal = bridge.goal('hello', session_id='s1')
    status, result = goal.result(timeout=30)
    assert status == 'succeeded' and result.success, result.error
    assert tts.texts == ['First sentence.', ' Second one!', ' Third, at 3.5 m?', ' 第四句。',
                         '最后']
    assert ''.join(goal.partials) == result.response == chat.response
    assert result.completion_tokens == 7
    sent = chat.goals[-1]
    assert sent.prompt == 'hello' and sent.session_id == 's1' and sent.stream_unit == 'sentence'


def test_tts_failure_stops_the_request_naming_the_sentence(scripted):
    chat, tts, bridge = scripted
    tts.reset(fail_on='Two')
    chat.partials = ['One.', ' Two.', ' Three.']
    chat.response = 'One. Two. Three.'
    goal = bridge.goal('hello')
    status, result = goal.result(timeout=30)
    assert status == 'aborted' and not result.success and result.finish_reason == 'error'
    assert 'sentence 2' in result.error and 'speaker unplugged' in result.error, result.error
    assert tts.texts == ['One.'] and result.response == 'One.'
    assert tts.started == ['One.', ' Two.']          # Three is never sent


def start_held(chat, tts, bridge):
    """Start a request whose chat reply is held after 'Hold on.' has been spoken."""
    tts.reset()
    chat.partials, chat.response = ['Hold on.'], 'Hold on. Done.'
    chat.hold.clear()
    goal = bridge.goal('first')
    assert goal.accepted()      # its result is requested now, before anything is stopped
    # The bridge's feedback, not the fake's record: the fake records a text before its reply
    # reaches the bridge, and a stop in between (documented) does not count it as spoken.
    wait_until(lambda: goal.partials, 'the first sentence spoken', 20, log=bridge.log)
    assert tts.texts == ['Hold on.']
    return goal


def test_one_request_at_a_time(scripted):
    chat, tts, bridge = scripted
    try:
        first = start_held(chat, tts, bridge)
        second = bridge.goal('second')
        status, result = second.result(timeout=20)
        assert status == 'aborted' and result.error.startswith('busy'), result.error
    finally:
        chat.hold.set()
    status, result = first.result(timeout=20)
    assert status == 'succeeded' and result.response == 'Hold on. Done.'
    assert tts.texts == ['Hold on.', ' Done.']


# ====================================================================== configuration errors
def test_chat_action_unavailable_is_a_clear_error():
    graph = GraphClient()
    tts = FakeTts(graph, f'/fake_tts_{uuid.uuid4().hex[:8]}')
    bridge = BridgeProcess(graph, '/no_such_chat_action', tts.name, server_timeout_s=1.0)
    try:
        goal = bridge.goal('hello')
        status, result = goal.result(timeout=30)
        assert status == 'aborted' and not result.success
        assert '/no_such_chat_action not available' in result.error, result.error
        assert tts.started == []
    finally:
        bridge.close()
        graph.close()


@pytest.mark.parametrize('params, message', [
    ({'tts_service_type': 'jobot_ai_msgs/srv/NoSuchType'}, 'tts_service_type'),
    ({'tts_service_type': 'std_srvs/srv/Trigger'}, 'tts_text_field: std_srvs/srv/Trigger '
                                                   "request has no string field 'text'"),
    ({'tts_text_field': 'message'}, "no string field 'message' (string fields: ['text'])"),
    ({'tts_timeout_s': -1.0}, 'tts_timeout_s: must be a number > 0'),
])
def test_bad_configuration_exits_naming_the_parameter(params, message):
    args = [a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
    proc = subprocess.run(
        [sys.executable, '-m', 'br_chat_lifecycle.tts_bridge', '--ros-args', *args],
        cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout, proc.stdout + proc.stderr


def test_sigint_answers_the_request_in_progress(scripted):
    chat, tts, _ = scripted
    graph = GraphClient()
    bridge = BridgeProcess(graph, chat.name, tts.name)
    try:
        goal = start_held(chat, tts, bridge)
        bridge.proc.send_signal(signal.SIGINT)
        status, result = goal.result(timeout=20)
        assert status == 'aborted' and result.finish_reason == 'cancelled'
        assert 'node shutting down (SIGINT)' in result.error, result.error
        assert result.response == 'Hold on.'
        assert bridge.proc.wait(20) == 0, bridge.log()
        assert 'Traceback' not in bridge.log(), bridge.log()
    finally:
        chat.hold.set()
        bridge.close()
        graph.close()
