# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Round trips through the generated jobot_ai_msgs interfaces with real rclpy (no model).

One service server + client (LLMChat) and one action server + client (LLMChatAction, streamed
feedback), all in this pytest process, spun by a MultiThreadedExecutor in a thread. Every wait is
bounded and fails the test with a message saying what did not arrive.
"""
import os
import threading
import time

from action_msgs.msg import GoalStatus
from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat
import pytest
import rclpy
from rclpy.action import ActionClient, ActionServer
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

TIMEOUT_S = 10.0
SUFFIX = f'{os.getpid()}'  # unique names per pytest process, on top of the random domain id


def wait_until(predicate, what, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}')
        time.sleep(0.01)


def wait_future(future, what, timeout=TIMEOUT_S):
    wait_until(future.done, what, timeout)
    return future.result()


class Spinner:
    """Creates nodes in `ctx` and spins them in a MultiThreadedExecutor on a background thread."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.executor = MultiThreadedExecutor(num_threads=4, context=ctx)
        self.nodes = []
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)

    def node(self, name):
        n = rclpy.create_node(f'{name}_{SUFFIX}', context=self.ctx)
        self.nodes.append(n)
        self.executor.add_node(n)
        return n

    def __enter__(self):
        return self

    def start(self):
        self.thread.start()

    def __exit__(self, *exc):
        self.executor.shutdown(timeout_sec=5.0)
        for n in self.nodes:
            n.destroy_node()
        self.thread.join(timeout=5.0)
        assert not self.thread.is_alive(), 'executor thread did not stop'


def fields(msg_type):
    return msg_type.get_fields_and_field_types()


def test_vendor_compatible_field_order():
    # The vendor's clients set only `prompt` and read only `response` / `partial`: those must be
    # the first fields with the vendor's names and types; everything else is appended.
    assert list(fields(LLMChat.Request))[0] == 'prompt'
    assert fields(LLMChat.Request)['prompt'] == 'string'
    assert list(fields(LLMChat.Response))[0] == 'response'
    assert fields(LLMChat.Response)['response'] == 'string'
    assert list(fields(LLMChatAction.Goal))[0] == 'prompt'
    assert fields(LLMChatAction.Goal)['prompt'] == 'string'
    assert list(fields(LLMChatAction.Result))[0] == 'response'
    assert fields(LLMChatAction.Result)['response'] == 'string'
    assert fields(LLMChatAction.Feedback) == {'partial': 'string'}


def test_field_types():
    common_req = {'prompt': 'string', 'session_id': 'string', 'reset_session': 'boolean',
                  'response_format': 'string', 'json_schema': 'string',
                  # per-request options, client history and tools (appended)
                  'system_prompt': 'string', 'max_tokens': 'int32', 'temperature': 'float',
                  'top_p': 'float', 'top_k': 'int32', 'min_p': 'float',
                  'repeat_penalty': 'float', 'seed': 'int64', 'stop': 'sequence<string>',
                  'messages_json': 'string', 'tools_json': 'string', 'tool_choice': 'string'}
    common_res = {'response': 'string', 'success': 'boolean', 'error': 'string',
                  'finish_reason': 'string', 'prompt_tokens': 'uint32',
                  'completion_tokens': 'uint32', 'latency_s': 'float'}  # 'float' = float32
    appended_res = {'cached_prompt_tokens': 'uint32', 'tool_calls_json': 'string'}
    assert fields(LLMChat.Request) == common_req
    assert list(fields(LLMChat.Request))[:5] == list(common_req)[:5]
    assert fields(LLMChat.Response) == dict(common_res, **appended_res)
    assert fields(LLMChatAction.Goal) == dict(common_req, stream_unit='string')
    assert fields(LLMChatAction.Result) == dict(common_res, time_to_first_token_s='float',
                                                **appended_res)


@pytest.mark.parametrize('msg_type', [LLMChat.Request, LLMChatAction.Goal])
def test_appended_fields_default_to_the_node_parameter(msg_type):
    """
    Check that a client setting only `prompt` sends "use the node's parameter" sentinels.

    Such a client (the vendor's) sends, for every per-request option, the value that means "use the
    node's parameter".
    """
    msg = msg_type(prompt='hi')
    assert (msg.system_prompt, msg.max_tokens, msg.top_k, msg.seed) == ('', 0, -1, -1)
    for name in ('temperature', 'top_p', 'min_p', 'repeat_penalty'):
        assert getattr(msg, name) < 0, name
    assert list(msg.stop) == [] and msg.messages_json == '' and msg.tools_json == ''
    assert msg.tool_choice == ''


def test_service_round_trip(rclpy_context):
    name = f'chat_service_{SUFFIX}'
    seen = []

    def handle(request, response):
        seen.append(request)
        response.response = f'echo[{request.session_id}]: {request.prompt}'
        response.success = True
        response.error = ''
        response.finish_reason = 'stop'
        response.prompt_tokens = len(request.prompt)
        response.completion_tokens = 4_000_000_000  # > int32 max: proves uint32 on the wire
        response.latency_s = 0.1
        return response

    with Spinner(rclpy_context) as sp:
        server_node = sp.node('iface_srv_server')
        client_node = sp.node('iface_srv_client')
        server_node.create_service(LLMChat, name, handle,
                                   callback_group=ReentrantCallbackGroup())
        client = client_node.create_client(LLMChat, name)
        sp.start()
        assert client.wait_for_service(timeout_sec=TIMEOUT_S), f'service {name} never appeared'

        prompt = 'Hello robot, ça va? ✓'
        req = LLMChat.Request(prompt=prompt, session_id='sess-1', reset_session=True,
                              response_format='json', json_schema='{"type": "object"}')
        res = wait_future(client.call_async(req), 'the LLMChat response')

    assert len(seen) == 1
    got = seen[0]
    assert (got.prompt, got.session_id, got.reset_session, got.response_format,
            got.json_schema) == (prompt, 'sess-1', True, 'json', '{"type": "object"}')

    assert isinstance(res, LLMChat.Response)
    assert res.response == f'echo[sess-1]: {prompt}' and isinstance(res.response, str)
    assert res.success is True
    assert res.error == '' and isinstance(res.error, str)
    assert res.finish_reason == 'stop'
    assert res.prompt_tokens == len(prompt) and isinstance(res.prompt_tokens, int)
    assert res.completion_tokens == 4_000_000_000 and isinstance(res.completion_tokens, int)
    assert isinstance(res.latency_s, float)
    # float32 on the wire: 0.1 comes back as the nearest float32, not the float64 0.1.
    assert res.latency_s == pytest.approx(0.1, rel=1e-6)
    assert res.latency_s != 0.1


def test_action_round_trip_streams_feedback_in_order(rclpy_context):
    name = f'chat_action_{SUFFIX}'
    partials = ['Hel', 'lo', ', wor', 'ld — ', 'ça va ✓']

    def execute(goal_handle):
        for p in partials:
            goal_handle.publish_feedback(LLMChatAction.Feedback(partial=p))
            time.sleep(0.02)
        goal_handle.succeed()
        return LLMChatAction.Result(
            response=''.join(partials), success=True, error='', finish_reason='stop',
            prompt_tokens=len(goal_handle.request.prompt), completion_tokens=len(partials),
            latency_s=0.25, time_to_first_token_s=0.125)

    with Spinner(rclpy_context) as sp:
        server_node = sp.node('iface_act_server')
        client_node = sp.node('iface_act_client')
        ActionServer(server_node, LLMChatAction, name, execute_callback=execute,
                     callback_group=ReentrantCallbackGroup())
        client = ActionClient(client_node, LLMChatAction, name,
                              callback_group=MutuallyExclusiveCallbackGroup())
        sp.start()
        assert client.wait_for_server(timeout_sec=TIMEOUT_S), f'action {name} never appeared'
        # The goal services being up does not mean the feedback topic is matched yet.
        fb_topic = f'/{name}/_action/feedback'
        wait_until(lambda: server_node.count_subscribers(fb_topic) >= 1
                   and client_node.count_publishers(fb_topic) >= 1,
                   f'discovery of the feedback topic {fb_topic}')

        received = []
        goal = LLMChatAction.Goal(prompt='say hello', session_id='s2')
        goal_handle = wait_future(
            client.send_goal_async(goal, feedback_callback=lambda m: received.append(
                m.feedback.partial)),
            'goal acceptance')
        assert goal_handle.accepted, 'goal was rejected'
        wrapped = wait_future(goal_handle.get_result_async(), 'the action result')
        # Feedback and result travel on different channels: let the last feedback land.
        wait_until(lambda: len(received) >= len(partials),
                   f'{len(partials)} feedback messages (got {received!r})')

    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED
    result = wrapped.result
    assert received == partials, 'feedback lost, duplicated or out of order'
    assert ''.join(received) == result.response
    assert result.success is True
    assert result.error == ''
    assert result.finish_reason == 'stop'
    assert result.prompt_tokens == len('say hello')
    assert result.completion_tokens == len(partials)
    assert isinstance(result.latency_s, float) and result.latency_s == 0.25
    assert result.time_to_first_token_s == 0.125
