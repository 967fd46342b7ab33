# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
LLMChatAction.Goal.stream_unit against the REAL chat node and the real SmolLM2 (greedy).

Every partial is collected exactly by the rig's feedback tap (chat_rig.Rig). "sentence" mode
must publish exactly the sentences SentenceStream finds in the reply (the last one carrying
the rest), for English and Chinese replies and for a cancelled reply; an unknown stream_unit
is refused naming the field before anything is generated; "" and "token" stay one partial per
piece of text.

Run: python -m pytest test/test_sentence_node.py -q   (about a minute on 2 cores)
"""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

from br_chat_lifecycle.sentence_stream import split_sentences  # noqa: E402
from chat_harness import wait_until  # noqa: E402
from chat_rig import assert_streamed_completely  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.slow

ENGLISH = 'Write three sentences about robots.'
CHINESE = '今天天气很好。'             # greedy SmolLM2 answers in Chinese: ！，。
MIXED = 'Write a Chinese sentence.'   # a Chinese sentence, a newline, English
TERMINATORS = '.!?。！？；;…'


sentences = split_sentences


@pytest.fixture(scope='module')
def rig(module_rigs, default_model_path):
    return module_rigs({'model_path': default_model_path, 'temperature': 0.0,
                        'max_tokens': 72, 'n_ctx': 1024})


def ask(rig, prompt, **fields):
    goal = rig.goal(prompt, **fields)
    status, result = goal.result(timeout=180)
    return goal, status, result


@pytest.mark.parametrize('prompt', [ENGLISH, CHINESE, MIXED],
                         ids=['english', 'chinese', 'mixed'])
def test_sentence_mode_publishes_whole_sentences(rig, prompt):
    goal, status, result = ask(rig, prompt, stream_unit='sentence')
    assert status == 'succeeded' and result.success, result.error
    assert_streamed_completely(goal, result)
    partials = goal.partials
    print(f'\n{prompt!r}: {partials}')
    assert len(partials) >= 2, f'expected several sentences in {result.response!r}'
    # exactly the sentences of the whole reply, in order
    assert partials == sentences(result.response)
    for partial in partials[:-1]:   # each ends a sentence (max_sentence_chars is not reached)
        assert partial.rstrip(' \n"\'”’)）*')[-1] in TERMINATORS or partial.endswith('\n'), \
            partial
    if prompt == CHINESE:
        assert any(c in result.response for c in '。！？'), result.response
    if prompt == MIXED:   # Chinese and English in one reply, split into sentences
        assert any('\u4e00' <= c <= '\u9fff' for c in result.response), result.response
        assert any('a' <= c.lower() <= 'z' for c in result.response), result.response


def test_token_mode_unchanged(rig):
    for unit in ('', 'token'):
        goal, status, result = ask(rig, ENGLISH, stream_unit=unit)
        assert status == 'succeeded' and result.success, result.error
        assert_streamed_completely(goal, result)
        # one partial per generated token (English text: every token is a whole piece; the
        # end-of-turn token has no text)
        print(f'\n{unit!r}: {len(goal.partials)} partials, {result.completion_tokens} tokens')
        assert result.completion_tokens - 1 <= len(goal.partials) <= result.completion_tokens
        assert len(goal.partials) > len(sentences(result.response))


def test_unknown_stream_unit_refused_naming_the_field(rig):
    goal, status, result = ask(rig, ENGLISH, stream_unit='word')
    assert status == 'aborted'
    assert not result.success and result.finish_reason == 'error'
    assert 'stream_unit' in result.error and '"sentence"' in result.error and \
        "'word'" in result.error, result.error
    assert result.completion_tokens == 0 and result.response == '' and goal.partials == []


def test_cancel_mid_sentence_returns_the_text_so_far(rig):
    rig.set_params(max_tokens=200)
    try:
        goal = rig.goal('Tell me a long story about a robot who learns to paint.',
                        stream_unit='sentence')
        goal.wait_feedback(timeout=120)   # the first sentence is out: cancel the next one
        goal.cancel()
        status, result = goal.result(timeout=60)
    finally:
        rig.set_params(max_tokens=72)
    assert status == 'canceled' and result.finish_reason == 'cancelled'
    assert_streamed_completely(goal, result)
    assert goal.partials == sentences(result.response)
    assert result.completion_tokens < 200


def test_max_sentence_chars_is_live_and_validated(rig):
    rig.set_params(max_sentence_chars=20)
    try:
        goal, status, result = ask(rig, ENGLISH, stream_unit='sentence')
    finally:
        rig.set_params(max_sentence_chars=200)
    assert status == 'succeeded', result.error
    assert_streamed_completely(goal, result)
    assert goal.partials == sentences(result.response, 20)
    assert all(len(p) <= 20 for p in goal.partials[:-1]), goal.partials
    with pytest.raises(AssertionError, match='max_sentence_chars'):
        rig.set_params(max_sentence_chars=5)
    wait_until(lambda: rig.state() == 'active', 'node still active', 10)
