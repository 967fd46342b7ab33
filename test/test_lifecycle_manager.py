# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
br_chat_lifecycle.lifecycle_manager against real lifecycle nodes on a real ROS 2 graph.

The managed nodes are test/lifecycle_test_node.py processes (plain standard lifecycle nodes);
the manager runs as its own process exactly as `ros2 run` would start it. Every wait is bounded
and nothing asserts on timing. The order of transitions is read from a file to which the test
nodes append one line per transition callback (the manager performs transitions one at a time,
so the file order is the real order).
"""

import threading

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('lifecycle_msgs')
pytest.importorskip('std_srvs')
pytest.importorskip('diagnostic_msgs')

from lifecycle_msgs.msg import Transition  # noqa: E402, I100 (after importorskip)
from ros_helpers import (start_lifecycle_manager,  # noqa: E402
                         start_lifecycle_test_node, status_level, status_values, unique_name,
                         wait_until)

ERROR_LEVEL = 2
STATUS_TASK = 'Lifecycle manager'


def start_nodes(procs, record, count=2, options=None):
    """Start `count` test nodes; options maps an index to extra start arguments."""
    nodes = []
    for i in range(count):
        node = start_lifecycle_test_node(
            unique_name(f'lm_node{i}'), record_file=record.file, **(options or {}).get(i, {}))
        procs.append(node)
        nodes.append(node)
    return nodes


def start_manager(procs, nodes, **params):
    manager = start_lifecycle_manager(unique_name('lm'), [n.fqn for n in nodes], **params)
    procs.append(manager)
    return manager


def call(ros, manager, op, timeout=60.0):
    response = ros.trigger(f'{manager.fqn}/{op}', timeout=timeout)
    assert response is not None, f'{op}: no response\n--- manager output ---\n{manager.output()}'
    return response


def status_name(manager):
    return f'{manager.name}: {STATUS_TASK}'


def test_services_drive_all_nodes_in_nav2_order(ros, procs, record):
    a, b = start_nodes(procs, record)
    manager = start_manager(procs, [a, b])

    response = call(ros, manager, 'is_active')
    assert response.success is False
    assert ros.get_state(a.fqn) == 'unconfigured'

    # startup: configure all in order, then activate all in order (as nav2 does).
    response = call(ros, manager, 'startup')
    assert response.success, response.message
    assert (ros.get_state(a.fqn), ros.get_state(b.fqn)) == ('active', 'active')
    assert record.lines() == [(a.fqn, 'configure'), (b.fqn, 'configure'),
                              (a.fqn, 'activate'), (b.fqn, 'activate')]
    response = call(ros, manager, 'is_active')
    assert response.success, response.message

    def step(service, state, transitions, active):
        mark = len(record.lines())
        response = call(ros, manager, service)
        assert response.success, response.message
        assert (ros.get_state(a.fqn), ros.get_state(b.fqn)) == (state, state)
        assert record.since(mark) == transitions
        assert call(ros, manager, 'is_active').success is active

    # pause: deactivate in reverse order; resume: activate in order; reset: deactivate all,
    # then clean up all, in reverse order.
    step('pause', 'inactive', [(b.fqn, 'deactivate'), (a.fqn, 'deactivate')], False)
    step('resume', 'active', [(a.fqn, 'activate'), (b.fqn, 'activate')], True)
    step('reset', 'unconfigured', [(b.fqn, 'deactivate'), (a.fqn, 'deactivate'),
                                   (b.fqn, 'cleanup'), (a.fqn, 'cleanup')], False)

    # shutdown from active: everything finalized, in reverse order.
    assert call(ros, manager, 'startup').success
    mark = len(record.lines())
    response = call(ros, manager, 'shutdown')
    assert response.success, response.message
    assert (ros.get_state(a.fqn), ros.get_state(b.fqn)) == ('finalized', 'finalized')
    assert [line for line in record.since(mark) if line[1] == 'shutdown'] == [
        (b.fqn, 'shutdown'), (a.fqn, 'shutdown')]
    response = call(ros, manager, 'is_active')
    assert response.success is False
    assert 'finalized' in response.message


def test_autostart_brings_nodes_up_and_startup_is_idempotent(ros, procs, record):
    a, b = start_nodes(procs, record)
    manager = start_manager(procs, [a, b], autostart=True)
    assert ros.wait_for_state(b.fqn, 'active', timeout=30.0), manager.output()
    assert ros.get_state(a.fqn) == 'active'
    assert wait_until(lambda: call(ros, manager, 'is_active').success, 'is_active', 10.0, 0.1,
                      raise_=False)

    # A second startup finds everything active and performs no transition.
    mark = len(record.lines())
    response = call(ros, manager, 'startup')
    assert response.success, response.message
    assert record.since(mark) == []


def test_failed_configure_stops_startup_and_rolls_back(ros, procs, record):
    a, b = start_nodes(procs, record, options={1: {'fail_on': 'configure'}})
    manager = start_manager(procs, [a, b])

    response = call(ros, manager, 'startup')
    assert response.success is False
    assert f'configure of {b.fqn} failed' in response.message
    assert 'node reported failure' in response.message
    # Node 1 had been configured; it is reported and rolled back, not left half-up.
    assert 'Already brought up' in response.message and a.fqn in response.message
    assert 'Rolled back' in response.message
    assert ros.get_state(a.fqn) == 'unconfigured'
    assert ros.get_state(b.fqn) == 'unconfigured'
    assert record.lines() == [(a.fqn, 'configure'), (b.fqn, 'configure'), (a.fqn, 'cleanup')]
    assert call(ros, manager, 'is_active').success is False

    status = ros.wait_for_status(
        status_name(manager), lambda s: status_level(s) == ERROR_LEVEL and b.fqn in s.message)
    assert status is not None, manager.output()


def test_hanging_transition_hits_the_timeout(ros, procs, record):
    a, b = start_nodes(procs, record, options={1: {'hang_on': 'configure', 'hang_s': 3.0}})
    manager = start_manager(procs, [a, b], transition_timeout_s=1.0)

    response = call(ros, manager, 'startup')
    assert response.success is False
    assert f'configure of {b.fqn} timed out after 1.0 s' in response.message
    assert (a.fqn, 'activate') not in record.lines()  # the sequence stopped there
    assert call(ros, manager, 'is_active').success is False


def test_is_active_answers_while_a_sequence_runs(ros, procs, record):
    a, = start_nodes(procs, record, count=1,
                     options={0: {'hang_on': 'configure', 'hang_s': 10.0}})
    manager = start_manager(procs, [a])
    # a first call primes the is_active client (a brand-new client's first reply can be slow)
    assert ros.trigger(f'{manager.fqn}/is_active', timeout=10.0) is not None

    result = {}
    runner = threading.Thread(
        target=lambda: result.update(startup=call(ros, manager, 'startup')))
    runner.start()
    try:
        assert wait_until(lambda: (a.fqn, 'configure') in record.lines(), 'configure', 20.0,
                          0.1, raise_=False)
        response = ros.trigger(f'{manager.fqn}/is_active', timeout=5.0)
        assert response is not None, 'is_active blocked behind the running startup'
        assert response.success is False
        assert 'startup in progress' in response.message
    finally:
        runner.join(timeout=60.0)
    assert result['startup'].success, result['startup'].message
    assert ros.get_state(a.fqn) == 'active'


def test_killed_node_is_reported_and_brought_back_when_respawned(ros, procs, record):
    a, b = start_nodes(procs, record)
    manager = start_manager(procs, [a, b], autostart=True, heartbeat_period_s=0.5,
                            get_state_timeout_s=1.0)
    assert ros.wait_for_state(b.fqn, 'active', timeout=30.0), manager.output()

    b.kill()  # SIGKILL: a crash, no clean-up
    status = ros.wait_for_status(
        status_name(manager),
        lambda s: status_level(s) == ERROR_LEVEL and b.fqn in s.message
        and status_values(s).get(a.fqn) == 'active', timeout=20.0)
    assert status is not None, manager.output()   # b reported, a still active
    assert status_values(status)[b.fqn] == 'unreachable'
    response = call(ros, manager, 'is_active')
    assert response.success is False and b.fqn in response.message

    # "launch respawns it": same name, a fresh process, which starts unconfigured.
    respawned = start_lifecycle_test_node(b.name, record_file=record.file)
    procs.append(respawned)
    assert ros.wait_for_state(b.fqn, 'active', timeout=30.0), manager.output()
    assert wait_until(lambda: call(ros, manager, 'is_active').success, 'is_active', 10.0, 0.1,
                      raise_=False), manager.output()
    assert ros.get_state(a.fqn) == 'active'  # the other node was left running


def test_without_respawn_reconnection_the_node_is_only_reported(ros, procs, record):
    a, b = start_nodes(procs, record)
    manager = start_manager(procs, [a, b], autostart=True, heartbeat_period_s=0.5,
                            get_state_timeout_s=1.0, attempt_respawn_reconnection=False)
    assert ros.wait_for_state(b.fqn, 'active', timeout=30.0), manager.output()

    b.kill()
    respawned = start_lifecycle_test_node(b.name, record_file=record.file)
    procs.append(respawned)
    assert ros.wait_for_state(b.fqn, 'unconfigured', timeout=30.0), respawned.output()
    # Once the manager has seen the respawned node it reports it, and leaves it alone.
    status = ros.wait_for_status(
        status_name(manager),
        lambda s: (status_level(s) == ERROR_LEVEL
                   and status_values(s).get(b.fqn) == 'unconfigured'), timeout=20.0)
    assert status is not None, manager.output()
    assert f"{b.fqn} is 'unconfigured', expected 'active'" in status.message, status.message
    assert ros.get_state(b.fqn) == 'unconfigured', manager.output()


def test_node_deactivated_behind_the_managers_back_is_reactivated(ros, procs, record):
    a, b = start_nodes(procs, record)
    manager = start_manager(procs, [a, b], autostart=True, heartbeat_period_s=0.5)
    assert ros.wait_for_state(b.fqn, 'active', timeout=30.0), manager.output()

    assert ros.change_state(a.fqn, Transition.TRANSITION_DEACTIVATE) is True
    assert wait_until(lambda: (a.fqn, 'deactivate') in record.lines(), 'deactivate', 10.0, 0.1,
                      raise_=False)
    assert wait_until(lambda: record.lines()[-1] == (a.fqn, 'activate'), 'activate', 20.0, 0.1,
                      raise_=False), manager.output()
    assert ros.get_state(a.fqn) == 'active'


def test_sigint_stops_the_manager_but_not_the_managed_nodes(ros, procs, record):
    a, = start_nodes(procs, record, count=1)
    manager = start_manager(procs, [a], autostart=True)
    assert ros.wait_for_state(a.fqn, 'active', timeout=30.0), manager.output()

    assert manager.stop(timeout=15.0) == 0, manager.output()
    assert ros.get_state(a.fqn) == 'active'
    assert (a.fqn, 'deactivate') not in record.lines()


def test_sigint_during_a_long_transition_exits_cleanly(ros, procs, record):
    a, = start_nodes(procs, record, count=1, options={0: {'hang_on': 'configure', 'hang_s': 20}})
    manager = start_manager(procs, [a], autostart=True, transition_timeout_s=60.0)
    assert manager.wait_for_output(f'configure {a.fqn}', 30.0), manager.output()

    # Exits on SIGINT (0) instead of waiting out the 60 s transition timeout (then SIGKILL).
    assert manager.stop(timeout=15.0) == 0, manager.output()
    assert 'Traceback' not in manager.output() and 'never retrieved' not in manager.output()
