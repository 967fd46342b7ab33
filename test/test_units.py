# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Pure-python units of br_chat_lifecycle (no ROS, no model).

Covers text_stream, sessions, job_queue, and settings vs config/br_chat.yaml.

Every wait is bounded (threading.Event.wait with a timeout); nothing asserts on timing.
"""
from pathlib import Path
import re
import threading
import time

from br_chat_lifecycle import settings
from br_chat_lifecycle.job_queue import Job, JobQueue, QueueClosed, QueueFull
from br_chat_lifecycle.sessions import session_id_error, SessionStore
from br_chat_lifecycle.text_stream import TextStream
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_YAML = REPO_ROOT / 'config' / 'br_chat.yaml'
WAIT_S = 10.0


# =============================================================================== text_stream
def feed_all(stream: TextStream, pieces) -> list:
    out = [stream.feed(p) for p in pieces]
    out.append(stream.finish())
    return out


def split_bytes(data: bytes, size: int):
    return [data[i:i + size] for i in range(0, len(data), size)]


UTF8_SAMPLES = ['你好，世界！请介绍一下你自己', 'emoji 😀👍🏽 and ü é ß', 'mixed aé你😀z', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢']


@pytest.mark.parametrize('text', UTF8_SAMPLES)
@pytest.mark.parametrize('size', [1, 2, 3, 5])
def test_text_stream_never_splits_a_utf8_character(text, size):
    stream = TextStream()
    out = feed_all(stream, split_bytes(text.encode('utf-8'), size))
    assert ''.join(out) == text == stream.text
    assert all('\ufffd' not in piece for piece in out)
    # Each non-empty piece is a whole number of characters: it round-trips through UTF-8 and
    # the pieces' byte lengths add up to the input's.
    assert sum(len(p.encode('utf-8')) for p in out) == len(text.encode('utf-8'))


def test_text_stream_holds_an_incomplete_character_until_it_completes():
    stream = TextStream()
    data = '你'.encode('utf-8')
    assert stream.feed(data[:1]) == ''
    assert stream.feed(data[1:2]) == ''
    assert stream.feed(data[2:]) == '你'


def test_text_stream_drops_an_incomplete_trailing_character():
    stream = TextStream()
    assert stream.feed(b'ok ' + '你'.encode('utf-8')[:2]) == 'ok '
    assert stream.finish() == ''
    assert stream.text == 'ok '


def test_text_stream_invalid_bytes_become_replacement_characters():
    stream = TextStream()
    out = feed_all(stream, [b'a', b'\xff', b'b', b'\xc3(', b'c'])
    assert ''.join(out) == stream.text == 'a\ufffdb\ufffd(c'


def test_text_stream_drops_nul_characters():
    # A ROS string is a C string: a NUL would silently truncate the response/partial.
    stream = TextStream()
    out = feed_all(stream, [b'a\x00b', b'\x00', b'c'])
    assert ''.join(out) == stream.text == 'abc'
    assert '' in out  # the NUL-only piece produced no text


def test_text_stream_stop_sequence_in_one_piece():
    stream = TextStream(['STOP'])
    assert stream.feed(b'Hello STOP world') == 'Hello '
    assert stream.stopped
    assert stream.feed(b'more') == ''
    assert stream.finish() == ''
    assert stream.text == 'Hello '


def test_text_stream_stop_sequence_split_over_pieces_is_held_back():
    stream = TextStream(['STOP'])
    assert stream.feed(b'Hello S') == 'Hello '   # 'S' may start 'STOP': held
    assert stream.feed(b'T') == ''
    assert stream.feed(b'O') == ''
    assert stream.feed(b'P and more') == ''
    assert stream.stopped
    assert stream.text == 'Hello '


def test_text_stream_held_prefix_is_released_when_it_is_not_a_stop():
    stream = TextStream(['STOP'])
    assert stream.feed(b'a ST') == 'a '
    assert stream.feed(b'x') == 'STx'
    assert stream.feed(b' S') == ' '
    assert stream.finish() == 'S'            # generation ended: nothing is a stop any more
    assert stream.text == 'a STx S'
    assert not stream.stopped


def test_text_stream_earliest_stop_wins_and_empty_stops_are_ignored():
    stream = TextStream(['', 'world', 'lo w'])
    out = feed_all(stream, [b'hel', b'lo wor', b'ld'])
    assert ''.join(out) == stream.text == 'hel'
    assert stream.stopped


def test_text_stream_multibyte_stop_split_inside_a_character():
    stop = '。结束'
    stream = TextStream([stop])
    data = ('你好' + stop + '后面').encode('utf-8')
    out = feed_all(stream, split_bytes(data, 1))
    assert ''.join(out) == stream.text == '你好'
    assert stream.stopped


@pytest.mark.parametrize('size', [1, 2, 4])
def test_text_stream_pieces_always_concatenate_to_text(size):
    text = 'The answer: 你好 <END> is not <EN the end 😀 <END> tail'
    stream = TextStream(['<END>'])
    out = feed_all(stream, split_bytes(text.encode('utf-8'), size))
    assert ''.join(out) == stream.text == 'The answer: 你好 '


# =============================================================================== sessions
@pytest.mark.parametrize('sid', ['', 'a', 'abc-1.2:x_Y', 'x' * 64])
def test_session_id_accepted(sid):
    assert session_id_error(sid) is None


@pytest.mark.parametrize('sid', ['has space', 'x' * 65, 'x' * 200, 'tab\t', 'ünï', 'a/b', ' '])
def test_session_id_rejected_with_a_reason(sid):
    err = session_id_error(sid)
    assert err and 'invalid session_id' in err and f'({len(sid)} chars)' in err
    assert len(err) < 200  # a 200-char id is shown shortened


def test_sessions_keep_separate_histories_and_return_copies():
    store = SessionStore(max_sessions=4, max_turns=8)
    assert store.history('a') == [] and store.history('') == []
    store.append('a', 'u1', 'r1')
    store.append('b', 'v1', 's1')
    store.append('a', 'u2', 'r2')
    assert store.history('a') == [('u1', 'r1'), ('u2', 'r2')]
    assert store.history('b') == [('v1', 's1')]
    copy = store.history('a')
    copy.pop()
    assert len(store.history('a')) == 2
    assert set(store.ids()) == {'a', 'b'} and len(store.history('b')) == 1


def test_sessions_empty_id_is_stateless():
    store = SessionStore(4, 4)
    store.append('', 'u', 'r')
    assert len(store) == 0 and store.history('') == []


def test_sessions_turn_limit_drops_oldest():
    store = SessionStore(max_sessions=4, max_turns=3)
    for i in range(5):
        store.append('a', f'u{i}', f'r{i}')
    assert store.history('a') == [('u2', 'r2'), ('u3', 'r3'), ('u4', 'r4')]


def test_sessions_lru_eviction():
    store = SessionStore(max_sessions=2, max_turns=4)
    store.append('a', 'u', 'r')
    store.append('b', 'u', 'r')
    store.history('a')                    # 'a' is now the most recently used
    store.append('c', 'u', 'r')           # evicts 'b'
    assert set(store.ids()) == {'a', 'c'}
    assert store.history('b') == []


def test_sessions_reset_replace_clear():
    store = SessionStore(4, 4)
    store.append('a', 'u1', 'r1')
    store.append('a', 'u2', 'r2')
    store.replace('a', [('u2', 'r2')])
    assert store.history('a') == [('u2', 'r2')]
    store.replace('zzz', [('x', 'y')])   # unknown session: not created
    assert 'zzz' not in store.ids()
    store.replace('zzz', [('x', 'y')], create=True)   # read back from session_dir
    assert store.history('zzz') == [('x', 'y')]
    assert store.reset('a') is True
    assert store.reset('a') is False
    assert store.history('a') == []
    store.append('b', 'u', 'r')
    store.clear()
    assert len(store) == 0


# =============================================================================== job_queue
class Starter:
    """
    A ``start`` for JobQueue that runs each job on a thread of its own.

    Jobs run as the engine runs generations, and the starter can hold them all at a gate.
    """

    def __init__(self):
        self.queue = None
        self.started = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self, job: Job) -> bool:
        if job.cancelled:
            job.finish(f'cancelled {job.payload}')
            return False
        with self.lock:
            self.started.append(job.payload)

        def run():
            assert self.gate.wait(WAIT_S), 'test gate never opened'
            job.finish(f'done {job.payload}')
            self.queue.done(job)
        threading.Thread(target=run, daemon=True).start()
        return True


@pytest.fixture
def queue_factory():
    queues = []

    def make(starter, max_running, max_waiting, **kw):
        q = JobQueue(starter, max_running, max_waiting, **kw)
        starter.queue = q
        queues.append(q)
        return q
    yield make
    for q in queues:
        q.close(timeout=WAIT_S)


def held_queue(queue_factory, max_running, max_waiting):
    """Return a queue whose jobs wait at a closed gate (``st.gate.set()`` lets them end)."""
    st = Starter()
    st.gate.clear()
    return queue_factory(st, max_running=max_running, max_waiting=max_waiting), st


def wait_started(starter, n):
    deadline = time.monotonic() + WAIT_S
    while len(starter.started) < n:
        assert time.monotonic() < deadline, f'{starter.started} started, expected {n}'
        time.sleep(0.001)


def test_job_queue_starts_jobs_in_arrival_order(queue_factory):
    st = Starter()
    q = queue_factory(st, max_running=1, max_waiting=10)
    jobs = [q.submit(Job(i)) for i in range(6)]
    for j in jobs:
        assert j.done.wait(WAIT_S)
    assert st.started == list(range(6))
    assert [j.result for j in jobs] == [f'done {i}' for i in range(6)]


@pytest.mark.parametrize('max_running, max_waiting', [(1, 0), (1, 3), (3, 2)])
def test_job_queue_capacity_is_max_running_plus_max_waiting(queue_factory, max_running,
                                                            max_waiting):
    q, st = held_queue(queue_factory, max_running, max_waiting)
    jobs = [q.submit(Job(f'j{i}')) for i in range(max_running + max_waiting)]
    wait_started(st, max_running)
    assert q.running == max_running and q.depth == max_waiting
    with pytest.raises(QueueFull, match=rf'n_parallel={max_running}.*max_queue={max_waiting}'):
        q.submit(Job('too many'))
    st.gate.set()
    for j in jobs:
        assert j.done.wait(WAIT_S)
    assert 'too many' not in st.started
    assert q.wait_idle(WAIT_S)
    assert q.submit(Job('again')).done.wait(WAIT_S)   # capacity is free again


def test_job_queue_one_conversation_at_a_time(queue_factory):
    """Two turns of one session never run at once; another session passes the waiting turn."""
    q, st = held_queue(queue_factory, 3, 5)
    first = q.submit(Job('a1', key='a'))
    second = q.submit(Job('a2', key='a'))
    other = q.submit(Job('b1', key='b'))
    wait_started(st, 2)
    assert st.started == ['a1', 'b1'] and q.depth == 1
    st.gate.set()
    for j in (first, second, other):
        assert j.done.wait(WAIT_S)
    assert st.started[-1] == 'a2'


def test_job_queue_capacity_does_not_depend_on_dispatcher_pickup(queue_factory):
    """A job counts from submit on, whether or not the dispatcher has started it yet."""
    q, st = held_queue(queue_factory, 1, 1)
    q.submit(Job(1))
    q.submit(Job(2))            # no wait for pickup in between
    with pytest.raises(QueueFull):
        q.submit(Job(3))
    st.gate.set()


def test_job_queue_cancel_all_cancels_running_and_waiting(queue_factory):
    q, st = held_queue(queue_factory, 1, 2)
    jobs = [q.submit(Job(i)) for i in range(3)]
    wait_started(st, 1)
    cancelled = q.cancel_all('deactivating')
    assert sorted(j.payload for j in cancelled) == [0, 1, 2]
    assert all(j.cancelled and j.cancel_reason == 'deactivating' for j in jobs)
    # the waiting ones are answered without running, before the running one ends
    assert jobs[1].done.wait(WAIT_S) and jobs[2].done.wait(WAIT_S)
    assert jobs[1].result == 'cancelled 1' and not jobs[0].done.is_set()
    st.gate.set()
    assert jobs[0].done.wait(WAIT_S)
    assert q.wait_idle(WAIT_S)


def test_job_queue_wait_idle_times_out_while_busy(queue_factory):
    q, st = held_queue(queue_factory, 1, 1)
    q.submit(Job(1))
    wait_started(st, 1)
    assert q.wait_idle(0.05) is False
    st.gate.set()
    assert q.wait_idle(WAIT_S) is True


def test_job_queue_start_exception_finishes_the_job_and_dispatcher_survives(queue_factory):
    errors = []

    def start(job):
        if job.payload == 'boom':
            raise ValueError('kaput')
        job.finish('ok')
        return False

    q = queue_factory(start, max_running=1, max_waiting=4,
                      on_error=lambda job, e: (errors.append(e), job.finish(f'error {e}')))
    bad, good = q.submit(Job('boom')), q.submit(Job('fine'))
    assert bad.done.wait(WAIT_S) and good.done.wait(WAIT_S)
    assert bad.result == 'error kaput' and isinstance(errors[0], ValueError)
    assert good.result == 'ok'
    assert q.wait_idle(WAIT_S)


def test_job_queue_survives_an_on_error_that_raises(queue_factory):
    def start(job):
        raise ValueError('kaput')

    def on_error(job, e):
        raise RuntimeError('the error handler fails too')

    q = queue_factory(start, max_running=1, max_waiting=4, on_error=on_error)
    jobs = [q.submit(Job(i)) for i in range(3)]
    assert all(j.done.wait(WAIT_S) for j in jobs)   # answered (None), dispatcher alive
    assert q.wait_idle(WAIT_S)


def test_job_queue_close_answers_waiting_jobs_then_refuses(queue_factory):
    q, st = held_queue(queue_factory, 1, 3)
    jobs = [q.submit(Job(i)) for i in range(4)]
    wait_started(st, 1)
    threading.Timer(0.05, st.gate.set).start()
    assert q.close(timeout=WAIT_S) is True
    assert all(j.done.wait(WAIT_S) and j.cancelled for j in jobs)  # each got its one result
    with pytest.raises(QueueClosed):
        q.submit(Job('late'))
    assert q.close(timeout=WAIT_S) is True  # idempotent


def test_job_finish_is_once_and_callbacks_run_once():
    job = Job(None)
    calls = []
    job.add_done_callback(lambda j: calls.append(('early', j.result)))
    job.finish('first')
    job.finish('second')
    job.add_done_callback(lambda j: calls.append(('late', j.result)))
    assert job.result == 'first'
    assert calls == [('early', 'first'), ('late', 'first')]
    job.cancel('a')
    job.cancel('b')
    assert job.cancel_reason == 'a'


# =============================================================================== settings
def load_yaml_params():
    with open(CONFIG_YAML, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    assert list(data) == ['/**'], 'the YAML should configure any node name (/**)'
    return data['/**']['ros__parameters']


NOT_OURS = {'diagnostic_updater.period'}  # declared by diagnostic_updater, not settings.PARAMS


def test_every_setting_is_in_the_yaml_with_the_same_default_and_vice_versa():
    params = load_yaml_params()
    ours = {k: v for k, v in params.items() if k not in NOT_OURS}
    assert set(ours) == set(settings.BY_NAME), (
        f'only in settings.PARAMS: {sorted(set(settings.BY_NAME) - set(ours))}; '
        f'only in br_chat.yaml: {sorted(set(ours) - set(settings.BY_NAME))}')
    for p in settings.PARAMS:
        value = ours[p.name]
        # The YAML value decides the ROS parameter type: 5 vs 5.0 matters.
        assert type(value) is type(p.default) and value == p.default, (
            f'{p.name}: br_chat.yaml has {value!r}, settings has {p.default!r}')


def test_yaml_comments_say_when_each_parameter_applies():
    """Each key's comment ends with [configure] or [live], matching Param.when."""
    tag = re.compile(r'\[(configure|live)\]')
    comment = []
    seen = {}
    for line in CONFIG_YAML.read_text(encoding='utf-8').splitlines():
        stripped = line.strip()
        if stripped.startswith('#'):
            comment.append(stripped)
            continue
        m = re.match(r'^\s{4}([A-Za-z_.]+):', line)
        if m:
            tags = tag.findall(' '.join(comment))
            seen[m.group(1)] = tags[-1] if tags else None
        comment = []
    for p in settings.PARAMS:
        assert seen.get(p.name) == p.when, f'{p.name}: YAML says {seen.get(p.name)}, ' \
                                           f'settings says {p.when}'


def test_defaults_are_valid_and_documented():
    assert settings.validate({p.name: p.default for p in settings.PARAMS}) == []
    for p in settings.PARAMS:
        assert p.description.strip(), p.name
        assert p.when in ('configure', 'live'), p.name


@pytest.mark.parametrize('values, fragment', [
    ({'n_ctx': -5}, 'n_ctx: must be in'),
    ({'temperature': -1.0}, 'temperature: must be >= 0.0'),
    ({'top_p': 1.5}, 'top_p: must be in [0.0, 1.0]'),
    ({'repeat_penalty': 0.0}, 'repeat_penalty: must be > 0.0'),
    ({'max_queue': -1}, 'max_queue: must be >= 0'),
    ({'chat_service_name': 'has space'}, 'chat_service_name: must be a non-empty ROS name'),
    ({'chat_action_name': ''}, 'chat_action_name: must be a non-empty ROS name'),
    ({'response_format': 'xml'}, 'response_format: must be one of'),
    ({'n_ctx': 'big'}, 'n_ctx: expected int, got str'),
    ({'response_format': 'json_schema', 'json_schema_file': ''}, 'needs json_schema_file'),
    ({'response_format': 'grammar', 'grammar_file': ''}, 'needs grammar_file'),
    ({'max_tokens': 512, 'n_ctx': 512}, 'max_tokens: must be smaller than n_ctx'),
])
def test_validate_names_the_parameter_and_the_reason(values, fragment):
    errors = settings.validate(values)
    assert any(fragment in e for e in errors), errors


def test_validate_accepts_int_for_float_and_unknown_names():
    assert settings.validate({'temperature': 0, 'deactivate_timeout_s': 3}) == []
    assert settings.validate({'not_a_parameter': object()}) == []
