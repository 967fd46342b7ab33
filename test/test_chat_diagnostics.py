# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Diagnostics of the chat node on /diagnostics and ~/stats, in every lifecycle state.

A real node process (tiny model: generation never ends early, so a long reply keeps the
queue busy on demand) and a real subscriber; levels and messages are asserted per state.
"""
import json
import threading

from chat_harness import ChatNodeProcess
from diagnostic_msgs.msg import DiagnosticStatus
import pytest
from std_msgs.msg import String
from tiny_gguf import write_tiny_model

OK, WARN, ERROR = (bytes(DiagnosticStatus.OK), bytes(DiagnosticStatus.WARN),
                   bytes(DiagnosticStatus.ERROR))
REQUIRED_KEYS = {
    'lifecycle_state', 'model_path', 'model_file_mb', 'n_ctx', 'n_threads', 'rss_mb',
    'model_rss_mb', 'requests_total', 'requests_ok', 'requests_failed', 'requests_refused',
    'requests_cancelled', 'queue_depth', 'active_sessions', 'latency_last_s',
    'latency_mean_s', 'latency_p95_s', 'ttft_last_s', 'generation_last_tps',
    'prompt_last_tps'}


def _level(st):
    return bytes(st.level) if isinstance(st.level, bytes) else bytes([st.level])


def _values(st):
    return {kv.key: kv.value for kv in st.values}


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    return str(write_tiny_model(tmp_path_factory.mktemp('diag') / 'tiny.gguf'))


@pytest.fixture
def client(graph):
    graph.subscribe_diagnostics()
    return graph


def _status(client, node, level, text, timeout=15.0):
    """Newest status of ``node`` with this level whose message contains ``text``."""
    mark = len(client.diagnostics)
    return client.latest_status(
        f'{node}: LLM chat', timeout=timeout, since=max(0, mark - 5),
        predicate=lambda st: _level(st) == level and text in st.message)


def test_levels_follow_lifecycle_and_failures(client, tiny_model, tmp_path):
    node = ChatNodeProcess({'model_path': str(tmp_path / 'missing.gguf'), 'n_ctx': 2048,
                            'max_tokens': 64, 'n_parallel': 1, 'max_queue': 2, 'temperature': 0.0,
                            'diagnostic_updater.period': 0.2})
    try:
        # Unconfigured: published although nothing is loaded; WARN "not serving".
        st = _status(client, node.name, WARN, 'unconfigured: not serving')
        assert st.name == f'{node.name}: LLM chat'
        assert _values(st)['lifecycle_state'] == 'unconfigured'

        # Failed configure: ERROR with the reason and the path.
        assert not client.change_state(node.name, 'configure')
        st = _status(client, node.name, ERROR, 'configure failed')
        assert 'missing.gguf' in st.message and 'not found' in st.message

        # Fix the parameter -> inactive: WARN, hardware_id is the model file name.
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        cli = client.node.create_client(SetParameters, f'/{node.name}/set_parameters')
        assert cli.wait_for_service(timeout_sec=10)

        def set_param(name, value):
            req = SetParameters.Request(
                parameters=[Parameter(name, value=value).to_parameter_msg()])
            result = client.wait_future(cli.call_async(req), 10, 'set_parameters').results[0]
            assert result.successful, result.reason
        set_param('model_path', tiny_model)
        assert client.change_state(node.name, 'configure')
        st = _status(client, node.name, WARN, 'inactive: not serving')
        assert st.hardware_id == 'tiny.gguf'
        values = _values(st)
        assert REQUIRED_KEYS <= set(values), REQUIRED_KEYS - set(values)
        assert float(values['model_file_mb']) > 0 and values['model_path'] == tiny_model

        # Active and healthy: OK; a served request shows up in the counters.
        assert client.change_state(node.name, 'activate')
        _status(client, node.name, OK, 'active')
        reply = client.chat('hello')
        assert reply.success, reply.error
        st = client.latest_status(
            f'{node.name}: LLM chat', since=max(0, len(client.diagnostics) - 1),
            predicate=lambda s: _values(s).get('requests_ok') == '1')
        values = _values(st)
        assert values['requests_total'] == '1'
        assert float(values['latency_last_s']) > 0
        assert float(values['generation_last_tps']) > 0
        assert float(values['rss_mb']) > float(values['model_rss_mb']) >= 0

        # Queue near full: WARN while two long requests wait behind a running one.
        set_param('max_tokens', 1900)
        futures = [client.chat_request('count') for _ in range(3)]
        _status(client, node.name, WARN, 'queue near full')
        for f in futures:
            assert client.wait_future(f, 60, 'queued reply').success

        # A refusal (queue full) is counted.
        futures = [client.chat_request('more') for _ in range(4)]
        replies = [client.wait_future(f, 60, 'reply') for f in futures]
        refused = [r for r in replies if 'queue full' in r.error]
        assert len(refused) == 1
        st = client.latest_status(
            f'{node.name}: LLM chat', since=max(0, len(client.diagnostics) - 1),
            predicate=lambda s: _values(s).get('requests_refused') == '1')

        # Latency threshold (a live parameter) -> WARN naming the latency.
        set_param('diag_latency_warn_s', 1e-6)
        _status(client, node.name, WARN, 'p95 latency')

        # Deactivated and cleaned up: WARN, not serving; the configure error is gone.
        assert client.change_state(node.name, 'deactivate')
        _status(client, node.name, WARN, 'inactive: not serving')
        assert client.change_state(node.name, 'cleanup')
        st = _status(client, node.name, WARN, 'unconfigured: not serving')
        assert _values(st)['model_rss_mb'] == '0.0'
    finally:
        node.stop()


def test_stats_topic_is_machine_readable(client, tiny_model):
    node = ChatNodeProcess({'model_path': tiny_model, 'n_ctx': 512, 'max_tokens': 16,
                            'diagnostic_updater.period': 0.2})
    got = []
    done = threading.Event()

    def on_stats(msg):
        data = json.loads(msg.data)
        got.append(data)
        if data.get('requests_ok') == 1:
            done.set()
    client.node.create_subscription(String, f'/{node.name}/stats', on_stats, 10)
    try:
        client.bring_up(node.name)
        assert client.chat('hi').success
        assert done.wait(15), f'no ~/stats message with requests_ok == 1: {got[-1:]}'
        data = [d for d in got if d.get('requests_ok') == 1][-1]
        assert data['lifecycle_state'] == 'active'
        assert isinstance(data['rss_mb'], float) and data['rss_mb'] > 0
        assert data['latency_last_s'] > 0 and data['generation_last_tps'] > 0
        assert data['n_ctx'] == 512
    finally:
        node.stop()
