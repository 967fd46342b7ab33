# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Speak chat replies sentence by sentence (executable ``tts_bridge``).

A plain rclpy node (not a lifecycle node: it loads nothing, only forwards between the chat
action and a text-to-speech service, so there is nothing to configure or release; parameters
are read when it starts, except the live timeouts):

  ``~/ask``   action, jobot_ai_msgs/action/LLMChatAction - the same interface as the chat
              node's ``chat_action``, so any chat client (and the vendor's) can use it. An
              action rather than a service because speaking takes seconds: the caller can
              cancel it and follows progress. The goal is forwarded to the chat action
              (``chat_action``) with every field as sent, except ``stream_unit``, which is
              always "sentence"; every sentence of the reply is spoken, in order, by calling
              the text-to-speech service once per sentence while the reply is still being
              generated. Feedback: each sentence once it has been spoken. Result: the chat's
              result once everything is spoken, except ``response`` = the text spoken (the
              whole reply on success; the partials concatenate to it) and ``latency_s`` = from
              the goal's start to the end of speech. Cancelling the goal cancels the chat goal
              and speaks nothing more (result: canceled, the text spoken so far).
  ``~/stop``  std_srvs/Trigger - stop the request in progress the same way (its result is then
              aborted, finish_reason "cancelled", error "stopped by ~/stop"). SIGINT/SIGTERM
              stop it too (error "node shutting down (SIGINT)") before the node exits.

One request at a time: a goal that arrives while another is being answered is aborted at once
with error "busy: ..." (call ``~/stop`` first to interrupt). The sentence being spoken when a
stop or cancel arrives is not interrupted (TextToSpeech has no stop); the bridge stops waiting
for it at once and does not count it as spoken.

Text-to-speech: ``tts_service`` of type ``tts_service_type`` (imported by name, default
jobot_ai_msgs/srv/TextToSpeech) whose string field ``tts_text_field`` receives the sentence as
the model wrote it (whitespace-only pieces are not sent). A response with a bool ``success``
that is false counts as a failure (its ``error`` or ``message`` is reported). A failed,
unavailable or timed-out call (``tts_timeout_s``) stops the request: the rest is not spoken,
the chat goal is cancelled, the result is aborted with the error naming the sentence.

Ordering and completeness: feedback callbacks only queue sentences (speaking never blocks
receiving), and the chat action client is in a mutually exclusive callback group, so
sentences are taken in the order they were published. rclpy's ActionClient drops feedback
that arrives after the result; the bridge recovers it from the result's ``response``: the
text after the concatenation of the partials received is split into sentences (SentenceStream,
MAX_TAIL_SENTENCE_CHARS) and spoken too.

Hand-written: the queueing and stop policy above; sentence splitting is sentence_stream's (the
chat node splits, the bridge only splits a recovered tail).
"""
import queue
import threading
import time
from typing import Any, Dict, List, Optional

from jobot_ai_msgs.action import LLMChatAction
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from . import node_main
from .ros_schema import import_interface
from .sentence_stream import SentenceStream

# Deep, reliable feedback: every sentence matters (default ActionClient feedback depth is 10).
FEEDBACK_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
MAX_TAIL_SENTENCE_CHARS = 200   # the chat node's default max_sentence_chars
POLL_S = 0.02
STOPPED = 'stopped'

# name: (default, description, when) - 'start': read when the node starts; 'live': read for
# every request.
PARAMS: Dict[str, Any] = {
    'chat_action': ('chat_action', "The chat node's LLMChatAction action.", 'start'),
    'tts_service': ('text_to_speech', 'The text-to-speech service, called once per sentence.',
                    'start'),
    'tts_service_type': ('jobot_ai_msgs/srv/TextToSpeech',
                         'Type of tts_service (package/srv/Name); any service type with a '
                         'string request field works.', 'start'),
    'tts_text_field': ('text', 'The string field of the tts_service request that receives '
                       'the sentence.', 'start'),
    'tts_timeout_s': (30.0, 'Bound on one text-to-speech call (waiting for the service and '
                      'its response); beyond it the request stops with an error.', 'live'),
    'server_timeout_s': (5.0, 'How long a request waits for the chat action server (and, '
                         'after a cancel, for the chat result).', 'live'),
    'chat_timeout_s': (600.0, 'Bound on one request (generation and speech); beyond it the '
                       'chat goal is cancelled and the request aborted.', 'live'),
}


def _check(name: str, value) -> Optional[str]:
    default = PARAMS[name][0]
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            return f'{name}: must be a number > 0 (got {value!r})'
    elif not isinstance(value, str) or not value.strip():
        return f'{name}: must be a non-empty string (got {value!r})'
    return None


def tts_interface(type_name: str, field: str):
    """Import the text-to-speech service type; ValueError says what is wrong with it."""
    try:
        srv = import_interface(type_name)
    except ValueError as e:
        raise ValueError(f'tts_service_type: {e}') from e
    if not hasattr(srv, 'Request'):
        raise ValueError(f'tts_service_type: {type_name} is not a service type')
    fields = srv.Request.get_fields_and_field_types()
    if fields.get(field) not in ('string', 'wstring'):
        strings = [f for f, t in fields.items() if t in ('string', 'wstring')]
        raise ValueError(f'tts_text_field: {type_name} request has no string field {field!r} '
                         f'(string fields: {strings or "none"})')
    return srv


class _Request:
    """One request in progress: the sentences received and spoken, the stop flag."""

    def __init__(self, goal_handle):
        self.goal_handle = goal_handle
        self.sentences: 'queue.Queue[str]' = queue.Queue()
        self.lock = threading.Lock()
        self.received: List[str] = []     # partials taken from the chat feedback
        self.result_seen = False          # after this, feedback is ignored (tail recovery)
        self.spoken: List[str] = []
        self.stop_reason = ''             # set by cancel, ~/stop, a timeout or a failure
        self.failure = ''                 # why the reply could not be spoken completely

    def fail(self, error: str) -> None:
        self.failure = self.failure or error
        self.stop_reason = self.stop_reason or error

    def on_feedback(self, msg) -> None:
        with self.lock:
            if self.result_seen or self.stop_reason:
                return
            self.received.append(msg.feedback.partial)
            self.sentences.put(msg.feedback.partial)

    def stopping(self) -> str:
        if not self.stop_reason and self.goal_handle.is_cancel_requested:
            self.stop_reason = 'cancelled by the client'
        return self.stop_reason


class TtsBridge(Node):

    def __init__(self, node_name: str = 'tts_bridge', **kwargs):
        super().__init__(node_name, **kwargs)
        for name, (default, description, when) in PARAMS.items():
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, dynamic_typing=isinstance(default, float),
                additional_constraints=('applies to every request' if when == 'live'
                                        else 'read when the node starts')))
        errors = [e for name in PARAMS for e in [_check(name, self._param(name))] if e]
        if errors:
            raise ValueError('invalid parameters: ' + '; '.join(errors))
        self._tts_name = self._param('tts_service')
        self._tts_field = self._param('tts_text_field')
        self._tts_type = tts_interface(self._param('tts_service_type'), self._tts_field)
        self.add_on_set_parameters_callback(self._check_parameters)
        group = ReentrantCallbackGroup()
        self._tts = self.create_client(self._tts_type, self._tts_name, callback_group=group)
        # One feedback at a time, in the order taken: sentences stay in order.
        self._chat = ActionClient(self, LLMChatAction, self._param('chat_action'),
                                  callback_group=MutuallyExclusiveCallbackGroup(),
                                  feedback_sub_qos_profile=FEEDBACK_QOS)
        self._busy = threading.Lock()
        self._current: Optional[_Request] = None
        self._server = ActionServer(self, LLMChatAction, '~/ask', self._execute,
                                    goal_callback=lambda goal: GoalResponse.ACCEPT,
                                    cancel_callback=lambda handle: CancelResponse.ACCEPT,
                                    callback_group=group, feedback_pub_qos_profile=FEEDBACK_QOS)
        self._stop_service = self.create_service(Trigger, '~/stop', self._on_stop,
                                                 callback_group=group)
        self.get_logger().info(
            f'serving {self.resolve_service_name("~/ask")} (LLMChatAction) and '
            f'{self.resolve_service_name("~/stop")}: replies of '
            f'{self.resolve_service_name(self._param("chat_action"))} are spoken by '
            f'{self.resolve_service_name(self._tts_name)} '
            f'({self._param("tts_service_type")}.{self._tts_field})')

    # ---------------------------------------------------------------- parameters
    def _param(self, name: str):
        value = self.get_parameter(name).value
        return float(value) if isinstance(PARAMS[name][0], float) else value

    def _check_parameters(self, params):
        errors = []
        for p in params:
            if p.name not in PARAMS:
                continue
            if PARAMS[p.name][2] == 'start':
                errors.append(f'{p.name}: read when the node starts; restart it to change')
            else:
                errors.extend(e for e in [_check(p.name, p.value)] if e)
        return SetParametersResult(successful=not errors, reason='; '.join(errors))

    # ---------------------------------------------------------------- ~/stop
    def _on_stop(self, request, response):
        current = self._current
        response.success = True
        if current is None or current.stop_reason:
            response.message = 'nothing to stop'
        else:
            current.stop_reason = 'stopped by ~/stop'
            response.message = 'stopping the request in progress'
        return response

    def shutdown(self, reason: str, timeout: float = 5.0) -> None:
        """Stop the request in progress and wait (bounded) until its client is answered."""
        current = self._current
        if current is None:
            return
        current.stop_reason = current.stop_reason or reason
        if self._busy.acquire(timeout=timeout):
            self._busy.release()
            time.sleep(0.2)    # let rclpy send the result before the node goes
        else:
            self.get_logger().warning(f'{reason}: the request in progress did not end within '
                                      f'{timeout:g} s')

    # ---------------------------------------------------------------- ~/ask
    def _execute(self, goal_handle):
        result = LLMChatAction.Result()
        if not self._busy.acquire(blocking=False):
            result.error = ('busy: speaking the reply to another request (one at a time; '
                            'call ~/stop to interrupt it)')
            result.finish_reason = 'error'
            goal_handle.abort()
            return result
        started = time.monotonic()
        try:
            run = _Request(goal_handle)
            self._current = run
            self._serve(run, result)
        except Exception as e:  # never leave a goal without a result
            self.get_logger().error(f'request failed: {type(e).__name__}: {e}')
            result.success = False
            result.error = f'internal error: {type(e).__name__}: {e}'
        finally:
            self._current = None
            self._busy.release()
        if not result.success and not result.finish_reason:
            result.finish_reason = 'error'
        result.latency_s = time.monotonic() - started   # until the last sentence was spoken
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _serve(self, run: _Request, result) -> None:
        started = time.monotonic()
        wait = self._param('server_timeout_s')
        chat_name = self.resolve_service_name(self._param('chat_action'))
        if not self._chat.wait_for_server(timeout_sec=wait):
            result.error = f'chat action {chat_name} not available (waited {wait:g} s)'
            return
        goal = LLMChatAction.Goal()
        for name in goal.get_fields_and_field_types():
            setattr(goal, name, getattr(run.goal_handle.request, name))
        goal.stream_unit = 'sentence'
        sent = self._chat.send_goal_async(goal, feedback_callback=run.on_feedback)
        if not self._wait(sent, started + wait, run):
            result.error = run.stopping() or (
                f'chat action {chat_name} did not answer the goal within {wait:g} s')
            result.finish_reason = 'cancelled' if run.stopping() else 'error'
            # the goal may still be accepted later: cancel it then
            sent.add_done_callback(
                lambda f: f.result().accepted and f.result().cancel_goal_async())
            return
        chat_goal = sent.result()
        if not chat_goal.accepted:
            result.error = f'chat action {chat_name} rejected the goal (is the chat node active?)'
            return
        chat_result = chat_goal.get_result_async()
        deadline = started + self._param('chat_timeout_s')
        cancel_sent = False
        while True:
            if not run.stopping() and time.monotonic() > deadline:
                run.fail(f'not finished within chat_timeout_s='
                         f'{self._param("chat_timeout_s"):g} s')
            if run.stopping():
                if not cancel_sent and not chat_result.done():
                    chat_goal.cancel_goal_async()
                    cancel_sent = True
                break
            try:
                text = run.sentences.get(timeout=POLL_S)
            except queue.Empty:
                if chat_result.done() and not run.result_seen:
                    self._recover_tail(run, chat_result.result().result.response)
                elif run.result_seen:
                    break       # every sentence received has been spoken
                continue
            error = self._speak(run, text)
            if error == STOPPED:
                continue
            if error:
                run.fail(f'text-to-speech failed for sentence {len(run.spoken) + 1} '
                         f'({text.strip()[:40]!r}): {error}')
                self.get_logger().error(run.failure)
                continue
            run.spoken.append(text)
            run.goal_handle.publish_feedback(LLMChatAction.Feedback(partial=text))
        if run.stop_reason:
            self._wait(chat_result, time.monotonic() + wait, None)
        chat = chat_result.result().result if chat_result.done() else None
        self._fill(result, chat, run)

    def _recover_tail(self, run: _Request, response: str) -> None:
        """Queue the text the chat result has beyond the feedback received (it arrived)."""
        with run.lock:
            run.result_seen = True
            received = ''.join(run.received)
        if not response.startswith(received):
            run.fail('the chat feedback received is not a prefix of the reply: spoke only '
                     'what was received')
            self.get_logger().error(run.failure)
            return
        tail = response[len(received):]
        if not tail:
            return
        splitter = SentenceStream(MAX_TAIL_SENTENCE_CHARS, preceding=received)
        pieces = splitter.feed(tail) + [splitter.finish()]
        self.get_logger().info(f'{len(tail)} character(s) of the reply came only with the '
                               f'result: speaking them as {len([p for p in pieces if p])} '
                               'sentence(s)')
        for piece in pieces:
            if piece:
                run.sentences.put(piece)

    @staticmethod
    def _fill(result, chat, run: _Request) -> None:
        if chat is not None:
            for name in result.get_fields_and_field_types():
                setattr(result, name, getattr(chat, name))
        result.response = ''.join(run.spoken)
        if run.stop_reason:
            result.success = False
            result.finish_reason = 'error' if run.failure else 'cancelled'
            result.error = run.stop_reason if chat is None or not chat.error else \
                f'{run.stop_reason} (chat: {chat.error})'
        elif chat is None:
            result.success = False
            result.error = 'no result from the chat action'
            result.finish_reason = 'error'

    def _speak(self, run: _Request, text: str) -> str:
        """Call the text-to-speech service for ``text``: '' when spoken, STOPPED, or an error."""
        if not text.strip():
            return ''
        timeout = self._param('tts_timeout_s')
        deadline = time.monotonic() + timeout
        while not self._tts.service_is_ready():
            if run.stopping():
                return STOPPED
            if time.monotonic() > deadline:
                return f'service {self._tts.srv_name} not available (waited {timeout:g} s)'
            time.sleep(POLL_S)
        request = self._tts_type.Request()
        setattr(request, self._tts_field, text)
        future = self._tts.call_async(request)
        if not self._wait(future, deadline, run):
            self._tts.remove_pending_request(future)
            if run.stopping():
                return STOPPED
            return f'no response from {self._tts.srv_name} within {timeout:g} s'
        if future.exception() is not None:
            return f'{type(future.exception()).__name__}: {future.exception()}'
        response = future.result()
        if getattr(response, 'success', True) is False:
            why = getattr(response, 'error', '') or getattr(response, 'message', '')
            return f'{self._tts.srv_name} answered success=false' + (f': {why}' if why else '')
        return ''

    def _wait(self, future, deadline: float, run: Optional[_Request]) -> bool:
        """Wait for ``future``: True when done, False at ``deadline``, a stop or shutdown."""
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        while not done.wait(POLL_S):
            if time.monotonic() > deadline or (run is not None and run.stopping()) or \
                    not self.context.ok():
                return future.done()
        return True


def main(args=None):
    """
    Run the bridge until SIGINT/SIGTERM.

    The signals are handled here rather than by rclpy (which would shut the context down at
    once): a request in progress is stopped first - its chat goal cancelled, its client
    answered (aborted, "node shutting down (SIGINT)") - then the node is destroyed.
    """
    def make_bridge():
        try:
            return TtsBridge()
        except Exception as e:  # invalid parameters, unknown type: say why and exit
            print(f'tts_bridge: {e}', flush=True)
            raise SystemExit(2)

    node_main.run(make_bridge, args,
                  on_signal=lambda node, name: node.shutdown(f'node shutting down ({name})'),
                  on_exit=lambda node: node.shutdown('node shutting down'))


if __name__ == '__main__':
    main()
