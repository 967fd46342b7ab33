# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Several conversations at once: parallel slots with continuous batching.

Every session's KV cache is kept warm (RAM) and saved across cleanup and restarts (session_dir).
Real node process, real graph, real SmolLM2 (greedy) where the text matters, the tiny model where
it does not.
"""
import json
import os
from pathlib import Path
import sys
import time
import uuid

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_harness import GraphClient, wait_until  # noqa: E402

GREEDY = {'temperature': 0.0, 'seed': 1}
# Prompts whose greedy replies differ recognisably.
# (question, words any of which a right answer contains); a batch composition can change how the
# model spells the same answer ('eight' or '8': seen in CI), so both spellings count
QUESTIONS = [
    ('What is the capital of France? Answer in one sentence.', ('Paris',)),
    ('What color is the sky on a clear day? Answer in one sentence.', ('blue',)),
    ('How many legs does a spider have? Answer in one sentence.', ('eight', '8')),
    ('What animal says meow? Answer in one sentence.', ('cat',)),
]


def right_answer(keywords, response):
    return any(k.lower() in response.lower() for k in keywords)


LONG_STORY = 'Write a long story about a robot who learns to paint.'


def smol_params(default_model_path, **extra):
    params = {'model_path': default_model_path, 'n_parallel': 4, 'n_ctx': 1024,
              'max_tokens': 48, 'diagnostic_updater.period': 0.2, **GREEDY}
    params.update(extra)
    return params


def test_four_goals_stream_together_and_each_gets_its_own_reply(rigs, default_model_path):
    """
    Stream 4 action goals at once, each to its own reply.

    All are generating together (slots busy 4), each streams partials that concatenate to its own
    result, and each reply answers its own prompt. A greedy reply alone and the same request among
    3 others are compared: see the docstring of test_greedy_alone_vs_batched for what is
    guaranteed.
    """
    rig = rigs(smol_params(default_model_path, max_tokens=64))
    goals = [rig.goal(q) for q, _ in QUESTIONS]
    snap = rig.stats(since=time.monotonic(), predicate=lambda s: s['slots_busy'] == 4,
                     timeout=30)
    assert snap['slots_total'] == 4
    for goal, (question, keywords) in zip(goals, QUESTIONS):
        status, res = goal.result(timeout=120)
        assert status == 'succeeded', (question, res)
        assert ''.join(goal.partials) == res.response, question
        assert right_answer(keywords, res.response), (question, res.response)


def test_greedy_alone_vs_batched(rigs, default_model_path):
    """
    The same greedy request alone and beside 3 others gives the same reply, token for token.

    Guaranteed because every decode step stays under n_batch=32 tokens and no prompt token is
    evaluated alone: llama.cpp's CPU kernels compute each token's row the same way whatever else
    is in a batch of 2 to 63 tokens (from 64 on, some weight types such as Q4_1/Q8_0 go through a
    matrix path that rounds differently; measured on SmolLM2: different late tokens with 64-token
    chunks; a single row takes the matrix-vector path: engine.MIN_PROMPT_CHUNK).
    """
    rig = rigs(smol_params(default_model_path, max_tokens=48))
    question, keywords = QUESTIONS[0]
    alone = rig.chat(question, timeout=120)
    assert alone.success and right_answer(keywords, alone.response), alone
    others = [rig.call_async(q) for q, _ in QUESTIONS[1:]]
    batched = rig.chat(question, timeout=120)
    for fut in others:
        assert GraphClient.wait_future(fut, 120, 'a batched reply').success
    assert batched.success and batched.response == alone.response, (alone, batched)


def test_cancel_one_of_four_the_others_finish(rigs, default_model_path):
    rig = rigs(smol_params(default_model_path, max_tokens=64))
    # the one cancelled is long: a one-sentence answer could end before the cancel arrives
    goals = [rig.goal(q) if i != 1 else rig.goal(LONG_STORY, max_tokens=400)
             for i, (q, _) in enumerate(QUESTIONS)]
    goals[1].wait_feedback()
    goals[1].cancel()
    status, res = goals[1].result(timeout=60)
    assert status == 'canceled' and res.finish_reason == 'cancelled', res
    assert res.completion_tokens < 400, res
    assert ''.join(goals[1].partials) == res.response
    for i in (0, 2, 3):
        status, res = goals[i].result(timeout=120)
        assert status == 'succeeded', res
        assert right_answer(QUESTIONS[i][1], res.response), res.response


def test_json_schema_request_beside_plain_text_requests(rigs, default_model_path):
    rig = rigs(smol_params(default_model_path, max_tokens=96))
    schema = json.dumps({'type': 'object', 'properties': {
        'city': {'type': 'string', 'maxLength': 30}, 'country': {'type': 'string',
                                                                 'maxLength': 30}},
        'required': ['city', 'country'], 'additionalProperties': False})
    plain = [rig.call_async(q) for q, _ in QUESTIONS[1:]]
    structured = rig.chat('Name a big city and its country.', json_schema=schema, timeout=120)
    assert structured.success, structured
    data = json.loads(structured.response)
    assert set(data) == {'city', 'country'}
    for fut, (q, keywords) in zip(plain, QUESTIONS[1:]):
        res = GraphClient.wait_future(fut, 120, q)
        assert res.success and right_answer(keywords, res.response), res.response


def test_slot_and_queue_limits(rigs, tiny_models):
    """n_parallel running + max_queue waiting; the next request is refused at once."""
    rig = rigs({'model_path': tiny_models['long'], 'n_ctx': 8192, 'max_tokens': 6000,
                'n_parallel': 2, 'max_queue': 1, 'diagnostic_updater.period': 0.2})
    running = [rig.goal('one'), rig.goal('two')]
    for g in running:
        g.wait_feedback()
    waiting = rig.call_async('three')
    rig.stats(since=time.monotonic(),
              predicate=lambda s: s['slots_busy'] == 2 and s['queue_depth'] == 1)
    refused = rig.chat('four')
    assert not refused.success and 'queue full' in refused.error
    assert 'n_parallel=2' in refused.error and 'max_queue=1' in refused.error
    for g in running:
        g.cancel()
    assert GraphClient.wait_future(waiting, 60, 'the waiting request').completion_tokens > 0


def _turns(rig, session, prompts):
    replies = []
    for p in prompts:
        res = rig.chat(p, session_id=session, timeout=120)
        assert res.success, res
        replies.append(res)
    return replies


def test_sessions_interleaved_keep_their_kv_cache_warm(rigs, default_model_path):
    """
    Keep the KV caches of 3 sessions on 2 slots warm, round-robin.

    Every follow-up turn finds its history in the KV cache (restored from RAM when another session
    took its slot) and continues its own conversation: its greedy reply is exactly the reply of
    the same conversation held in its slot all along (a session with no one in between). What a
    135M model recalls differs from CPU to CPU, so the test compares with that reference rather
    than expecting the secret word itself; a wrong or partial restore changes the reply.
    """
    rig = rigs(smol_params(default_model_path, n_parallel=2, max_tokens=24))
    names = {'s1': 'Alice', 's2': 'Bob', 's3': 'Carol'}
    sessions = {k: f'{k}-{uuid.uuid4().hex[:6]}' for k in names}
    question = 'What is the secret word? Answer with the word only.'
    first = {k: _turns(rig, sessions[k], [f'The secret word is {name}.'])[0].response
             for k, name in names.items()}
    warm = {}
    for k, name in names.items():
        res = rig.chat(question, session_id=sessions[k], timeout=120)
        assert res.success, res
        history = res.prompt_tokens - 20   # roughly: the new turn's own tokens
        assert res.cached_prompt_tokens >= history * 0.8, res
        others = [n for n in names.values() if n != name]
        assert not any(n in res.response for n in others), (k, res.response)
        warm[k] = res.response
    snap = rig.stats(since=time.monotonic())
    assert snap['sessions_restored_ram'] >= 1, snap
    assert snap['prompt_cache_ratio'] > 0.3, snap
    for k, name in names.items():   # references: the same two turns with no one in between
        ref = _turns(rig, f'ref-{k}-{uuid.uuid4().hex[:6]}',
                     [f'The secret word is {name}.', question])
        assert [r.response for r in ref] == [first[k], warm[k]], (k, first[k], warm[k])


def test_session_dir_survives_restart_and_skips_bad_files(rigs, default_model_path,
                                                          tiny_models, tmp_path):
    """
    Continue a session after cleanup/configure and after a process restart.

    Its KV state is loaded from session_dir: the follow-up evaluates only the new tokens. A
    truncated and a garbage file are skipped with a warning; a file saved with another model keeps
    its history but not its KV state.
    """
    session_dir = tmp_path / 'sessions'
    params = smol_params(default_model_path, n_parallel=2, max_tokens=24,
                         session_dir=str(session_dir))
    rig = rigs(params)
    sid = f'robot-{uuid.uuid4().hex[:6]}'
    first, = _turns(rig, sid, ['The secret word is Alice.'])
    # cleanup -> configure -> activate: the session comes back from disk
    assert rig.transition('deactivate') and rig.transition('cleanup')
    assert rig.transition('configure') and rig.transition('activate')
    rig.wait_servers()
    again = rig.chat('What is the secret word?', session_id=sid, timeout=120)
    assert again.success and 'Alice' in again.response, again
    assert again.cached_prompt_tokens >= first.prompt_tokens, again
    # a new process with the same session_dir
    assert rig.close() == 0
    (session_dir / 'garbage.session').write_bytes(os.urandom(300))
    files = sorted(session_dir.glob('*.session'))
    victim = next(f for f in files if f.name != 'garbage.session')
    truncated = session_dir / ('74' + victim.name)   # another valid-looking name
    truncated.write_bytes(victim.read_bytes()[:200])
    rig2 = rigs(params)
    log = wait_until(lambda: 'session(s) restored' in rig2.log() and rig2.log(),
                     'the restore log line', 30)
    assert 'garbage.session skipped' in log and f'{truncated.name} skipped' in log, log
    third = rig2.chat('Tell me the secret word again.', session_id=sid, timeout=120)
    assert third.success and 'Alice' in third.response, third
    assert third.cached_prompt_tokens >= again.prompt_tokens, third
    snap = rig2.stats(since=time.monotonic())
    assert snap['sessions_restored_disk'] >= 1, snap
    assert rig2.close() == 0
    # the same directory with another model: history yes, KV state no (and why)
    rig3 = rigs(dict(params, model_path=tiny_models['short'], max_tokens=4))
    log = wait_until(lambda: 'session(s) restored' in rig3.log() and rig3.log(),
                     'the restore log line', 30)
    assert 'history restored, its KV state not' in log and 'another model file' in log, log
    fourth = rig3.chat('hi', session_id=sid, timeout=60)
    assert fourth.success and fourth.cached_prompt_tokens == 0, fourth
    assert fourth.prompt_tokens > third.prompt_tokens / 2, fourth   # the history is there
