# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Requests a client can shape: per-request options, a client-owned history (messages_json).

Real node process, real graph, SmolLM2. The node runs with its defaults (temperature 0.2,
random seed), so every request that needs determinism asks for it itself.
"""
import json
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_harness import GraphClient  # noqa: E402
import pytest  # noqa: E402

GREEDY = {'temperature': 0.0}


@pytest.fixture(scope='module')
def rig(module_rigs, default_model_path):
    return module_rigs({'model_path': default_model_path, 'n_ctx': 1024, 'max_tokens': 64,
                        'diagnostic_updater.period': 0.2})


def test_max_tokens_caps_this_reply_only(rig):
    res = rig.chat('Tell me a long story about a robot.', max_tokens=5, **GREEDY)
    assert res.success and res.completion_tokens == 5 and res.finish_reason == 'length', res
    res = rig.chat('Tell me a long story about a robot.', **GREEDY)
    assert res.completion_tokens > 5, res   # the node's max_tokens (64) again


def test_greedy_twice_gives_the_same_reply(rig):
    first = rig.chat('Describe a sunny day in the park.', **GREEDY)
    second = rig.chat('Describe a sunny day in the park.', **GREEDY)
    assert first.success and second.success
    assert first.response == second.response


def test_stop_sequence_of_the_request(rig):
    prompt = 'Explain what a robot is in three sentences.'
    full = rig.chat(prompt, **GREEDY)
    assert '.' in full.response, full.response
    cut = rig.chat(prompt, stop=['.'], **GREEDY)
    assert cut.success and cut.finish_reason == 'stop', cut
    assert cut.response == full.response[:full.response.index('.')]


def test_system_prompt_of_the_request_reaches_the_template(rig):
    question = 'What is the capital of Italy?'
    plain = rig.chat(question, **GREEDY)   # SmolLM2's template adds its own default system
    french = rig.chat(question, system_prompt='Always answer in French.', **GREEDY)
    longer = rig.chat(question, system_prompt='Always answer in French, politely and with '
                                              'many details about history.', **GREEDY)
    assert french.success and longer.success
    assert longer.prompt_tokens > french.prompt_tokens      # rendered as the system message
    assert french.prompt_tokens != plain.prompt_tokens
    assert french.response != plain.response, french.response


def test_two_clients_with_different_options_at_once(rig):
    short = rig.call_async('Tell me a long story about a cat.', max_tokens=3, **GREEDY)
    cut = rig.call_async('Count from 1 to 10, one number per line.', stop=['\n'],
                         max_tokens=40, **GREEDY)
    short, cut = (GraphClient.wait_future(f, 120, 'reply') for f in (short, cut))
    assert short.completion_tokens == 3 and short.finish_reason == 'length', short
    assert cut.finish_reason == 'stop' and '\n' not in cut.response, cut


@pytest.mark.parametrize('fields, fragment', [
    ({'top_p': 2.0}, 'top_p: must be in [0.0, 1.0] (got 2.0)'),
    ({'min_p': 1.5}, 'min_p: must be in [0.0, 1.0]'),
    ({'repeat_penalty': 0.0}, 'repeat_penalty: must be > 0.0'),
    ({'max_tokens': -3}, 'max_tokens: must be >= 0'),
    ({'max_tokens': 5000}, 'max_tokens: must be smaller than n_ctx (5000 >= 1024)'),
    ({'seed': -7}, 'seed: must be -1'),
    ({'stop': ['x'] * 20}, 'stop: at most 16 sequences'),
])
def test_out_of_range_options_are_refused_naming_the_field(rig, fields, fragment):
    res = rig.chat('hello', **fields)
    assert not res.success and res.finish_reason == 'error', res
    assert 'invalid request option' in res.error and fragment in res.error, res.error
    assert res.completion_tokens == 0


HISTORY = [{'role': 'user', 'content': 'The secret word is Zebra.'},
           {'role': 'assistant', 'content': 'Understood, the secret word is Zebra.'},
           {'role': 'user', 'content': 'Good. Remember it.'},
           {'role': 'assistant', 'content': 'I will remember it.'}]


def test_messages_json_history_is_honoured(rig):
    res = rig.chat('What is the secret word?', messages_json=json.dumps(HISTORY), **GREEDY)
    assert res.success and 'Zebra' in res.response, res.response
    alone = rig.chat('What is the secret word?', **GREEDY)
    assert res.prompt_tokens > alone.prompt_tokens + 20


def test_messages_json_too_long_drops_the_oldest_turns(rig):
    filler = [{'role': 'user', 'content': 'Tell me about the weather. ' * 30},
              {'role': 'assistant', 'content': 'It is sunny and warm today. ' * 30}] * 6
    system = [{'role': 'system', 'content': 'You are a robot.'}]
    mark = len(rig.log())
    res = rig.chat('What is the secret word?', max_tokens=16, timeout=180,
                   messages_json=json.dumps(system + filler + HISTORY), **GREEDY)
    assert res.success, res
    assert res.prompt_tokens <= 1024 - 16
    assert 'messages_json: dropped the' in rig.log()[mark:]


@pytest.mark.parametrize('value, fragment', [
    ('{"role": "user"', 'messages_json: not valid JSON'),
    ('{"role": "user", "content": "hi"}', 'messages_json: must be a JSON array'),
    ('[{"role": "robot", "content": "hi"}]', 'messages_json[0].role: must be one of'),
    ('[{"role": "user", "content": 5}]', 'messages_json[0].content: must be a string'),
    ('["hi"]', 'messages_json[0]: must be an object'),
    ('[{"role": "user", "content": "hi", "mood": "x"}]', "unknown key(s) ['mood']"),
    (json.dumps([{'role': 'user', 'content': 'x' * 40000}]),
     'characters of content, the limit is max_history_chars=32000'),
])
def test_malformed_messages_json_gets_a_precise_error(rig, value, fragment):
    res = rig.chat('hello', messages_json=value)
    assert not res.success and fragment in res.error, res.error


def test_messages_json_and_session_id_are_exclusive(rig):
    res = rig.chat('hello', messages_json=json.dumps(HISTORY), session_id='s1')
    assert not res.success and 'are exclusive' in res.error, res.error


def test_goal_options_work_on_the_action_too(rig):
    goal = rig.goal('Tell me a long story about a robot.', max_tokens=4, **GREEDY)
    status, res = goal.result(timeout=60)
    assert status == 'succeeded' and res.completion_tokens == 4, res
    assert ''.join(goal.partials) == res.response


def test_vendor_style_request_uses_the_node_parameters(rig):
    rig.set_params(max_tokens=7)
    try:
        res = rig.chat('Tell me a long story about a robot.')   # only `prompt` set
        assert res.completion_tokens == 7 and res.finish_reason == 'length', res
    finally:
        rig.set_params(max_tokens=64)
