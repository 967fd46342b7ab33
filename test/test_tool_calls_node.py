# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Tool calls through the real node (service and action), with the real SmolLM2.

Every call is valid under its tool's schema by construction (validity is asserted, not
correctness).
"""
import json
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_harness import GraphClient  # noqa: E402
import jsonschema  # noqa: E402
import pytest  # noqa: E402
from test_tool_calls import ROBOT_TOOLS, ROBOT_TOOLS_JSON  # noqa: E402

SCHEMAS = {t['function']['name']: t['function'].get('parameters',
                                                    {'type': 'object', 'properties': {}})
           for t in ROBOT_TOOLS}
INSTRUCTIONS = [
    'Turn on the kitchen light.', 'Switch off the light in the bedroom.',
    'Go to the living room.', 'Drive to the front door.', 'Say hello to everyone.',
    'Go back to your charging dock.', 'Tell the children that dinner is ready.',
    '打开厨房的灯。', '去客厅。', '请说你好。', '关掉卧室的灯。', '回到充电座。',
]
OPTIONS = {'temperature': 0.0, 'max_tokens': 200,
           'system_prompt': 'You are the voice interface of a home robot. Use the tools.'}


@pytest.fixture(scope='module')
def rig(module_rigs, default_model_path):
    return module_rigs({'model_path': default_model_path, 'n_ctx': 2048,
                        'diagnostic_updater.period': 0.2})


def assert_valid_calls(res, only=None):
    assert res.success, res.error
    assert res.finish_reason == 'tool_calls', res
    calls = json.loads(res.tool_calls_json)
    assert 1 <= len(calls) <= 4
    for call in calls:
        assert set(call) == {'name', 'arguments'}
        assert call['name'] in SCHEMAS and (only is None or call['name'] == only), call
        jsonschema.validate(call['arguments'], SCHEMAS[call['name']])
    return calls


def test_required_calls_are_valid_for_every_instruction(rig):
    futures = [rig.call_async(i, tools_json=ROBOT_TOOLS_JSON, tool_choice='required',
                              **OPTIONS) for i in INSTRUCTIONS]
    for instruction, fut in zip(INSTRUCTIONS, futures):
        res = GraphClient.wait_future(fut, 180, instruction)
        calls = assert_valid_calls(res)
        print(f'\n{instruction} -> {calls}')


def test_a_named_tool_is_the_only_one_called(rig):
    for instruction in INSTRUCTIONS[:4]:
        res = rig.chat(instruction, tools_json=ROBOT_TOOLS_JSON, tool_choice='set_light',
                       timeout=180, **OPTIONS)
        assert_valid_calls(res, only='set_light')


def test_none_gives_text_and_auto_gives_text_or_valid_calls(rig):
    res = rig.chat('Turn on the kitchen light.', tools_json=ROBOT_TOOLS_JSON,
                   tool_choice='none', timeout=180, **OPTIONS)
    assert res.success and res.tool_calls_json == '' and res.finish_reason != 'tool_calls'
    assert '<tool_call>' not in res.response
    for instruction in INSTRUCTIONS[:6]:
        res = rig.chat(instruction, tools_json=ROBOT_TOOLS_JSON, timeout=180, **OPTIONS)
        assert res.success, res.error
        if res.tool_calls_json:
            assert_valid_calls(res)
        else:
            assert '<tool_call>' not in res.response and res.finish_reason != 'tool_calls'


def test_the_action_streams_the_raw_reply_and_returns_the_calls(rig):
    goal = rig.goal('Turn on the kitchen light.', tools_json=ROBOT_TOOLS_JSON,
                    tool_choice='required', **OPTIONS)
    status, res = goal.result(timeout=180)
    assert status == 'succeeded'
    assert ''.join(goal.partials) == res.response and '<tool_call>' in res.response
    assert_valid_calls(res)


def test_a_tool_result_sent_back_gets_a_spoken_reply(rig):
    history = [{'role': 'user', 'content': 'Turn on the kitchen light.'},
               {'role': 'assistant', 'content': '', 'tool_calls': [
                   {'type': 'function', 'function': {
                       'name': 'set_light', 'arguments': '{"on": true, "room": "kitchen"}'}}]},
               {'role': 'tool', 'name': 'set_light', 'content': '{"success": true}'}]
    res = rig.chat('Tell me what you did.', messages_json=json.dumps(history),
                   tools_json=ROBOT_TOOLS_JSON, tool_choice='none', timeout=180, **OPTIONS)
    assert res.success and res.response.strip(), res


@pytest.mark.parametrize('tools_json, fragment', [
    ('not json', 'tools_json'),
    ('{"type": "function"}', 'array'),
    ('[{"type": "function", "function": {"description": "no name"}}]', 'name'),
    ('[{"type": "function", "function": {"name": "x", "parameters": {"type": 5}}}]',
     'parameters must describe an object'),
    (json.dumps([{'type': 'function', 'function': {'name': 'big', 'description': 'x' * 1000000}}]),
     'bytes'),
])
def test_bad_tools_json_is_refused_precisely_and_the_node_keeps_serving(rig, tools_json,
                                                                        fragment):
    res = rig.chat('Turn on the light.', tools_json=tools_json)
    assert not res.success and res.finish_reason == 'error', res
    assert fragment in res.error, res.error
    assert rig.chat('hello', max_tokens=4).success


def test_tools_and_structured_output_are_exclusive(rig):
    res = rig.chat('Turn on the light.', tools_json=ROBOT_TOOLS_JSON, response_format='json')
    assert not res.success and 'exclusive' in res.error, res.error
    res = rig.chat('Turn on the light.', tool_choice='set_light')
    assert not res.success and 'needs tools_json' in res.error, res.error
    res = rig.chat('Turn on the light.', tools_json=ROBOT_TOOLS_JSON, tool_choice='fly')
    assert not res.success and 'fly' in res.error, res.error
