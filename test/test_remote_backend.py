# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The chat node with ``backend: openai`` in front of a real OpenAI-compatible server (#14).

The server is llama-cpp-python's own (``python -m llama_cpp.server``) with SmolLM2, started by
these tests on localhost with an API key (so every request also proves the key is sent, and
every log and diagnostic is checked not to contain it). The node is the real ``chat_node``
process on a real graph (chat_rig.Rig). Covered: service and action (partials concatenate to
the result), a session over three turns (the history reaches the server as messages: seen
through a recording proxy), cancel and deactivate mid-stream (the server sees the stream
closed and stops), structured output, the server killed mid-stream and restarted (no
transition needed), request_timeout_s on a long reply (its own server), configure against a
server that is down / lacks the model / refuses the key, and the vendor's clients unchanged.
remote_servers.FakeServer, a real HTTP server, only produces what the real one cannot: a stream
that stalls mid-reply, a malformed stream, HTTP 503 with a body, a server that ignores stop
sequences or the JSON schema.
No timing assertions; every wait is bounded.
"""
import json
import os
from pathlib import Path
import re
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))

from br_chat_lifecycle import settings  # noqa: E402
from br_chat_lifecycle.remote_url import public_url, strip_userinfo, url_error  # noqa: E402
from chat_harness import ChatNodeProcess, GraphClient, wait_until  # noqa: E402
from chat_rig import assert_streamed_completely, Rig  # noqa: E402
import jsonschema  # noqa: E402
import pytest  # noqa: E402
from remote_servers import FakeServer, free_port, LlamaServer, RecordingProxy  # noqa: E402

KEY = 'sk-test-4f1c9e0b7d2a'            # the server's API key: must never show up anywhere
KEY_ENV = 'BR_CHAT_TEST_REMOTE_KEY'
WRONG_KEY = 'sk-wrong-88e1a0c3'
WRONG_KEY_ENV = 'BR_CHAT_TEST_REMOTE_WRONG_KEY'
ERROR = 2
OK = 0
SCHEMA = {'type': 'object', 'properties': {'name': {'type': 'string'},
                                           'age': {'type': 'integer'}},
          'required': ['name', 'age']}
WAIT_S = 90.0


def _level(st):
    return st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)


def _remote(url, **extra):
    params = {'backend': 'openai', 'base_url': url, 'model': 'smol', 'api_key_env': KEY_ENV,
              'temperature': 0.0, 'max_tokens': 48, 'n_parallel': 2,
              'request_timeout_s': 120.0, 'connect_timeout_s': 5.0}
    params.update(extra)
    return params


def _assert_no_secret(*texts):
    for text in texts:
        assert KEY not in text and WRONG_KEY not in text, 'an API key leaked'


def _status(graph, rig, predicate, timeout=20.0):
    graph.subscribe_diagnostics()
    return graph.latest_status(f'{rig.name}: LLM chat', timeout=timeout,
                               since=max(0, len(graph.diagnostics) - 3), predicate=predicate)


# ============================================================================ fixtures
@pytest.fixture(scope='module', autouse=True)
def api_keys():
    """
    Set the API keys' environment variables for the module's tests.

    The node processes inherit these (ChatNodeProcess copies os.environ).
    """
    old = {k: os.environ.get(k) for k in (KEY_ENV, WRONG_KEY_ENV)}
    os.environ[KEY_ENV], os.environ[WRONG_KEY_ENV] = KEY, WRONG_KEY
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope='module')
def server(default_model_path):
    srv = LlamaServer(default_model_path, api_key=KEY)
    yield srv
    srv.stop()


@pytest.fixture(scope='module')
def mgraph():
    g = GraphClient()
    yield g
    g.close()


@pytest.fixture(scope='module')
def rig(mgraph, server):
    """Start a node talking straight to the real server."""
    r = Rig(mgraph, _remote(server.url, max_prompt_chars=20000, n_ctx=8192))
    yield r
    r.close()
    _assert_no_secret(r.log())


@pytest.fixture(scope='module')
def proxy(server):
    p = RecordingProxy(server.port)
    yield p
    p.stop()


@pytest.fixture(scope='module')
def proxied_rig(mgraph, proxy):
    """Start a node talking to the real server through the recording proxy."""
    r = Rig(mgraph, _remote(proxy.url, stop=['###']))
    yield r
    r.close()


# ============================================================================ parameters
def test_backend_parameters_are_validated():
    base = dict(settings.defaults(), backend='openai', base_url='http://gpu:8000/v1',
                model='qwen')
    assert settings.validate(base) == []
    assert settings.validate(dict(settings.defaults())) == []       # local: nothing needed
    errors = settings.validate(dict(base, model=''))
    assert any(e.startswith('model: required with backend openai') for e in errors), errors
    errors = settings.validate(dict(base, base_url=''))
    assert any(e.startswith('base_url: required with backend openai') for e in errors)
    errors = settings.validate(dict(base, base_url='ftp://u:hunter2@gpu/v1'))
    assert any('http:// or https://' in e for e in errors) and 'hunter2' not in str(errors)
    errors = settings.validate(dict(base, api_key_env='sk-abc123-the-key-itself'))
    assert any(e.startswith('api_key_env: must be the NAME') for e in errors)
    assert 'sk-abc123' not in str(errors)        # a key pasted by mistake is not repeated
    for name in ('request_timeout_s', 'connect_timeout_s'):
        for bad in (0.0, -1.0, float('inf'), float('nan'), 1e9):
            assert any(e.startswith(name) for e in settings.validate(dict(base, **{name: bad})))
    assert settings.validate(dict(base, backend='gpu'))[0].startswith('backend: must be one of')


def test_urls_are_shown_without_credentials():
    assert public_url('https://robot:hunter2@gpu.local:8443/v1?key=abc#x') == \
        'https://gpu.local:8443/v1'
    assert public_url('http://[::1]:8000/v1') == 'http://[::1]:8000/v1'
    assert public_url('') == ''
    assert strip_userinfo('failed: GET http://a:b@h/v1/models and https://c@d/x') == \
        'failed: GET http://h/v1/models and https://d/x'
    assert url_error('http://h:99999/v1').startswith('not a valid URL')
    assert url_error('gpu:8000/v1').startswith('must start with http:// or https://')
    assert url_error('http:///v1') == 'has no host'
    assert url_error('http://gpu:8000/v1') is None


# ============================================================================ serving
def test_service_and_action_through_the_server(rig, server, mgraph):
    reply = rig.chat('Name three colours.', timeout=WAIT_S)
    assert reply.success, reply.error
    assert reply.response.strip() and reply.finish_reason in ('stop', 'length')
    assert reply.completion_tokens > 0 and reply.prompt_tokens > 0

    goal = rig.goal('Write two short sentences about robots.')
    status, result = goal.result(timeout=WAIT_S)
    assert status == 'succeeded' and result.success, result.error
    assert result.response.strip() and len(goal.partials) >= 2
    assert_streamed_completely(goal, result)
    assert 0 < result.time_to_first_token_s <= result.latency_s

    goal = rig.goal('Describe a robot in three sentences.', stream_unit='sentence')
    status, result = goal.result(timeout=WAIT_S)     # sentence streaming is the node's
    assert status == 'succeeded' and result.success, result.error
    assert_streamed_completely(goal, result)

    snap = rig.stats(since=0, predicate=lambda s: s['requests_ok'] >= 2, timeout=20)
    assert (snap['backend'], snap['base_url'], snap['model']) == ('openai', server.url, 'smol')
    assert snap['ttft_last_s'] > 0 and snap['generation_last_tps'] > 0
    st = _status(mgraph, rig, lambda st: _level(st) == OK)
    values = {kv.key: kv.value for kv in st.values}
    assert values['backend'] == 'openai' and values['base_url'] == server.url
    assert values['model'] == 'smol'
    _assert_no_secret(json.dumps(snap), str(values), rig.log())


def test_session_history_is_sent_as_messages(proxied_rig, proxy):
    rig = proxied_rig
    prompts = ['My robot is called Bolt.', 'It has four wheels.', 'What is my robot called?']
    replies = []
    for p in prompts:
        reply = rig.chat(p, session_id='garage', timeout=WAIT_S)
        assert reply.success, reply.error
        replies.append(reply.response)
    bodies = proxy.chat_bodies()[-3:]
    expected = []
    for i, body in enumerate(bodies):
        expected.append({'role': 'user', 'content': prompts[i]})
        assert body['messages'] == expected, body['messages']
        expected.append({'role': 'assistant', 'content': replies[i]})
    last = bodies[-1]   # the request options travel too
    assert last['model'] == 'smol' and last['stream'] is True
    assert last['max_tokens'] == 48 and last['temperature'] == 0.0
    assert last['stop'] == ['###'] and last['top_k'] == 40 and 'seed' not in last
    assert last['stream_options'] == {'include_usage': True}


def test_cancel_and_deactivate_close_the_stream_on_the_server(rig, server):
    rig.set_params(max_tokens=1500, temperature=0.9)
    try:
        for how in ('cancel', 'deactivate'):
            seen = server.disconnects()
            goal = rig.goal('Write a very long story about a robot that explores the sea.')
            goal.wait_feedback(timeout=WAIT_S)
            if how == 'cancel':
                goal.cancel()
            else:
                assert rig.transition('deactivate')
            status, result = goal.result(timeout=WAIT_S)
            # a goal ended by deactivate is aborted (the client did not ask to cancel it)
            assert status == ('canceled' if how == 'cancel' else 'aborted'), status
            assert result.finish_reason == 'cancelled' and not result.success
            assert result.response and result.completion_tokens < 1500
            assert_streamed_completely(goal, result)
            # the server noticed the closed stream and stopped generating
            wait_until(lambda: server.disconnects() > seen, f'the server to see the {how}',
                       WAIT_S, log=server.log_text)
            if how == 'deactivate':
                assert rig.transition('activate')
    finally:
        rig.set_params(max_tokens=48, temperature=0.0)
    reply = rig.chat('Say hello.', timeout=WAIT_S)   # and the next request is served
    assert reply.success, reply.error


def test_structured_output_json_schema(rig):
    reply = rig.chat('Give me a person with a name and an age, as JSON.',
                     response_format='json_schema', json_schema=json.dumps(SCHEMA),
                     timeout=WAIT_S)
    assert reply.success, reply.error
    jsonschema.validate(json.loads(reply.response), SCHEMA)
    # llama-cpp-python's server refuses the OpenAI json_schema form; the node used its own
    assert "refused response_format 'json_schema'" in rig.log()
    reply = rig.chat('Give me a JSON object describing a robot.', response_format='json',
                     timeout=WAIT_S)
    assert reply.success, reply.error
    assert isinstance(json.loads(reply.response), dict)


def test_tool_calls_and_per_request_options(rig, proxied_rig, proxy):
    """
    Send tools_json through the server: the calls are valid under their schemas.

    The tools go in a system message, the call grammar as ``grammar`` (which llama-cpp-python's
    server applies).
    """
    from test_tool_calls import ROBOT_TOOLS, ROBOT_TOOLS_JSON
    schemas = {t['function']['name']: t['function'].get('parameters', {}) for t in ROBOT_TOOLS}
    reply = rig.chat('Turn on the kitchen light.', tools_json=ROBOT_TOOLS_JSON,
                     tool_choice='required', max_tokens=200, timeout=WAIT_S)
    assert reply.success and reply.finish_reason == 'tool_calls', reply.error
    calls = json.loads(reply.tool_calls_json)
    assert calls
    for call in calls:
        jsonschema.validate(call['arguments'], schemas[call['name']])
    # per-request options reach the server (the proxied node's defaults differ)
    reply = proxied_rig.chat('Say hi.', max_tokens=7, temperature=0.5, top_k=5, seed=7,
                             stop=['!'], system_prompt='Be brief.', timeout=WAIT_S)
    assert reply.success, reply.error
    body = proxy.chat_bodies()[-1]
    assert (body['max_tokens'], body['temperature'], body['top_k'], body['seed']) == \
        (7, 0.5, 5, 7)
    assert body['stop'] == ['###', '!']
    assert body['messages'][0] == {'role': 'system', 'content': 'Be brief.'}


def test_server_error_reaches_the_client(rig, server):
    """
    Answer with an error naming the server when it fails a generation inside its stream.

    A prompt larger than the server's context (2048; the node assumes 8192): the server fails the
    generation inside its stream and ends the stream without a finish_reason.
    """
    reply = rig.chat('robot ' * 2800, timeout=WAIT_S)
    assert not reply.success and reply.finish_reason == 'error'
    assert 'ended the stream without a finish_reason' in reply.error
    assert server.url in reply.error
    assert rig.chat('Say yes.', timeout=WAIT_S).success


# ============================================================================ faults
def test_server_killed_mid_stream_then_back(mgraph, default_model_path):
    srv = LlamaServer(default_model_path, api_key=KEY)
    rig = Rig(mgraph, _remote(srv.url, max_tokens=1500, temperature=0.9))
    try:
        goal = rig.goal('Write a very long story about a robot that explores the desert.')
        goal.wait_feedback(timeout=WAIT_S)
        srv.kill()
        status, result = goal.result(timeout=WAIT_S)
        assert status == 'aborted' and not result.success and result.finish_reason == 'error'
        assert f'the connection to the server at {srv.url} broke mid-stream' in result.error
        assert result.response and result.response == ''.join(goal.partials)
        # the node stays active and says what went wrong
        assert rig.state() == 'active'
        st = _status(mgraph, rig, lambda st: _level(st) == ERROR and 'broke mid-stream'
                     in st.message)
        assert srv.url in st.message
        snap = rig.stats(since=0, predicate=lambda s: 'broke mid-stream' in s['last_error'])
        assert snap['lifecycle_state'] == 'active'
        down = rig.chat('Hello?', timeout=WAIT_S)      # while the server is down
        assert not down.success and f'cannot reach the server at {srv.url}' in down.error
        # the server comes back: requests succeed again, no transition
        srv.start()
        reply = rig.chat('Say hello.', timeout=WAIT_S)
        assert reply.success, reply.error
        assert rig.state() == 'active'
        _status(mgraph, rig, lambda st: _level(st) == OK)
        _assert_no_secret(rig.log(), json.dumps(snap))
    finally:
        rig.close()
        srv.stop()


def test_request_timeout_on_the_real_server(mgraph, default_model_path):
    """
    End a reply the real server is still streaming when request_timeout_s runs out.

    The request gets success=false with the reason and the text so far, the server sees its
    stream closed (so it stops generating), and the node stays active and serves the next
    request. Its own server instance: nothing it leaves running can touch the other tests.
    """
    srv = LlamaServer(default_model_path, api_key=KEY)
    r = Rig(mgraph, _remote(srv.url, request_timeout_s=2.0, max_tokens=1500, temperature=0.9))
    try:
        goal = r.goal('Write a very long story about a robot that explores the sea.')
        status, result = goal.result(timeout=WAIT_S)
        assert status == 'aborted' and result.finish_reason == 'error', (status, result)
        assert srv.url in result.error and 'request_timeout_s=2 s' in result.error, result.error
        assert not result.success and result.completion_tokens < 1500
        assert_streamed_completely(goal, result)
        wait_until(lambda: srv.disconnects() > 0, 'the server to see the stream closed',
                   WAIT_S, log=srv.log_text)
        assert r.state() == 'active'
        reply = r.chat('Say hello.', max_tokens=8, timeout=WAIT_S)
        assert reply.success, reply.error
    finally:
        r.close()
        srv.stop()
    _assert_no_secret(r.log())


def test_configure_failures_name_the_url_and_the_reason(mgraph, server):
    port = free_port()                     # nothing listens there
    rig = Rig(mgraph, _remote(f'http://robot:hunter2@127.0.0.1:{port}/v1',
                              connect_timeout_s=2.0), bring_up=False)
    try:
        assert not rig.transition('configure')
        assert f'configure failed: cannot reach the server at http://127.0.0.1:{port}/v1' \
            in rig.log()
        st = _status(mgraph, rig, lambda st: _level(st) == ERROR and 'configure failed'
                     in st.message)
        assert f'127.0.0.1:{port}/v1' in st.message
        assert 'hunter2' not in rig.log() and 'hunter2' not in str(list(st.values)) + \
            st.message

        rig.set_params(base_url=server.url, model='nosuch')
        assert not rig.transition('configure')
        assert (f"configure failed: the server at {server.url} does not serve model 'nosuch' "
                "(GET /models lists 'smol')") in rig.log()

        rig.set_params(model='smol', api_key_env=WRONG_KEY_ENV)
        assert not rig.transition('configure')
        assert re.search(rf'configure failed: the server at {re.escape(server.url)} answered '
                         r'GET /models with HTTP 401: .*Invalid API key', rig.log())

        rig.set_params(api_key_env='BR_CHAT_TEST_UNSET_VARIABLE')
        assert not rig.transition('configure')
        assert ('api_key_env: the environment variable BR_CHAT_TEST_UNSET_VARIABLE is not set'
                in rig.log())

        rig.set_params(api_key_env=KEY_ENV)   # all fixed: no restart needed
        rig.graph.bring_up(rig.name)
        rig.wait_servers()
        assert rig.chat('Say hi.', timeout=WAIT_S).success
        _assert_no_secret(rig.log())
    finally:
        rig.close()


@pytest.fixture(scope='module')
def fake():
    srv = FakeServer()
    yield srv
    srv.stop()


@pytest.fixture(scope='module')
def fake_rig(mgraph, fake):
    r = Rig(mgraph, _remote(fake.url, model=FakeServer.MODEL, request_timeout_s=2.0))
    yield r
    r.close()


def test_timeout_malformed_stream_and_http_errors(fake_rig, fake):
    rig = fake_rig
    goal = rig.goal('STALL please')
    status, result = goal.result(timeout=WAIT_S)
    assert status == 'aborted' and result.finish_reason == 'error'
    assert f'the server at {fake.url} did not finish the reply within request_timeout_s=2 s' \
        in result.error
    assert result.response == 'Thinking' == ''.join(goal.partials)   # the text so far

    reply = rig.chat('MALFORMED please', timeout=WAIT_S)
    assert not reply.success and f'the server at {fake.url} sent a malformed stream' \
        in reply.error
    assert reply.response == 'Part one'

    reply = rig.chat('OVERLOADED please', timeout=WAIT_S)
    assert not reply.success
    assert f'the server at {fake.url} answered HTTP 503' in reply.error
    assert 'model is overloaded, try again later' in reply.error   # the body surfaces
    assert rig.state() == 'active'


def test_stop_sequences_and_schema_are_enforced_by_the_node(fake_rig, fake):
    """
    Enforce stop sequences and the JSON schema in the node when the server ignores them.

    A server that ignores ``stop`` and ``response_format``: the node still cuts at the stop
    sequence (never streaming its start) and refuses a reply that breaks the schema.
    """
    rig = fake_rig
    rig.set_params(stop=['STOP'])
    try:
        goal = rig.goal('IGNORESTOP please')
        status, result = goal.result(timeout=WAIT_S)
    finally:
        rig.set_params(stop=[''])
    assert status == 'succeeded' and result.response == 'Hello world. '
    assert_streamed_completely(goal, result)
    assert not any('S' in p for p in goal.partials), goal.partials   # held back, then cut
    assert fake.chat_bodies()[-1]['stop'] == ['STOP']

    reply = rig.chat('IGNORESCHEMA please', response_format='json_schema',
                     json_schema=json.dumps(SCHEMA), timeout=WAIT_S)
    assert not reply.success
    assert reply.error.startswith('reply does not match the JSON schema'), reply.error
    sent = fake.chat_bodies()[-1]['response_format']
    assert sent == {'type': 'json_schema', 'json_schema': {'name': 'reply', 'schema': SCHEMA}}


# ============================================================================ vendor clients
def test_vendor_clients_unchanged(server):
    from test_chat_node import run_vendor_client  # the same runner as the local-model tests
    graph = GraphClient()
    node = ChatNodeProcess(_remote(server.url, max_tokens=64))
    try:
        graph.bring_up(node.name)
        proc = run_vendor_client('llm_client.py')
        m = re.search(r'模型回复:(.*)', proc.stdout)
        assert m and m.group(1).strip(), f'stdout {proc.stdout!r} stderr {proc.stderr[-1500:]!r}'
        proc = run_vendor_client('llm_client_action.py')
        m = re.search(r'\[Result\](.*)', proc.stdout, re.S)
        assert m and m.group(1).strip(), f'stdout {proc.stdout!r} stderr {proc.stderr[-1500:]!r}'
        assert proc.stdout[:m.start()].strip(), 'the action client printed no partials'
    finally:
        node.stop()
        graph.close()


# ============================================================================ benchmark
@pytest.mark.slow
def test_bench_remote_quick_runs(default_model_path):
    """
    Run bench/bench_remote.py --quick end to end; it prints its table.

    Numbers are not checked: they depend on the machine and its load.
    """
    import subprocess
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(repo / 'bench' / 'bench_remote.py'), '--quick',
                           '--model', default_model_path], cwd=str(repo), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}'
    assert '| Metric | direct | node | per-pair median | Target | Met |' in proc.stdout
