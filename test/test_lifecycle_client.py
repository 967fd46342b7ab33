# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
br_chat_lifecycle.lifecycle_client against real lifecycle nodes on a real ROS 2 graph.

The managed nodes are test/lifecycle_test_node.py processes; the client lives on the node of a
ros_helpers.RosClient (its own context, spun by a background thread), and the test thread makes
the blocking calls, as the client's docstring prescribes. Every wait is bounded; nothing asserts
on timing.
"""

from pathlib import Path
import sys
import threading

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('lifecycle_msgs')

from br_chat_lifecycle.lifecycle_client import (ACTIVATE, CONFIGURE,  # noqa: E402, I100
                                                DEACTIVATE, get_states, LifecycleClient,
                                                LifecycleError, NoResponse, resolve_node_name,
                                                ServiceUnavailable, ShuttingDown, TransitionFailed)
from ros_helpers import (RosProcess, start_lifecycle_test_node, unique_name,  # noqa
                         wait_until)


def start_node(procs, record, **options):
    node = start_lifecycle_test_node(unique_name('lc_node'), record_file=record.file, **options)
    procs.append(node)
    return node


def recorded(record):
    return record.lines()


def test_transitions_are_performed_and_verified(ros, procs, record):
    node = start_node(procs, record)
    client = LifecycleClient(ros.node, node.fqn)
    assert client.node_name == node.fqn
    assert client.wait_for_service()
    assert client.get_state() == 'unconfigured'
    assert client.transition(CONFIGURE) == 'inactive'
    assert client.transition(ACTIVATE) == 'active'
    # change_state alone: the node's answer, nothing verified.
    assert client.change_state(DEACTIVATE) is True
    assert client.get_state() == 'inactive'
    assert recorded(record) == [(node.fqn, 'configure'), (node.fqn, 'activate'),
                                (node.fqn, 'deactivate')]
    # A transition the node is not in a state for is refused by the node itself.
    assert client.change_state(DEACTIVATE) is False
    client.destroy()


def test_a_failing_transition_names_node_transition_and_state(ros, procs, record):
    node = start_node(procs, record, fail_on='configure')
    client = LifecycleClient(ros.node, node.fqn)
    with pytest.raises(TransitionFailed) as caught:
        client.transition(CONFIGURE)
    error = caught.value
    assert str(error) == (f'configure of {node.fqn} failed '
                          "(node reported failure; state is 'unconfigured')")
    assert (error.node, error.operation, error.state) == (node.fqn, 'configure', 'unconfigured')
    assert client.change_state(CONFIGURE) is False
    client.destroy()


def test_a_hanging_transition_times_out_with_state_unknown(ros, procs, record):
    node = start_node(procs, record, hang_on='configure', hang_s=3.0)
    client = LifecycleClient(ros.node, node.fqn, transition_timeout=0.5)
    with pytest.raises(NoResponse) as caught:
        client.transition(CONFIGURE)
    assert str(caught.value) == (f'configure of {node.fqn} timed out after 0.5 s '
                                 '(the node may still be in the middle of it)')
    assert caught.value.state == 'unknown'
    # The node carries on and finishes the transition by itself.
    assert wait_until(lambda: ros.get_state(node.fqn, timeout=1.0) == 'inactive',
                      'inactive', 20.0, 0.1, raise_=False)
    assert client.get_state() == 'inactive'
    client.destroy()


def test_a_lost_transition_reply_is_recognised_by_get_state(ros, procs):
    """
    Recognise a transition whose reply never comes (dropped by the middleware) by get_state.

    A stand-in node process (test/mute_lifecycle_node.py) performs the transition but never
    answers change_state, while its get_state reports the target state: the call succeeds after
    LOST_REPLY_PROBE_S instead of waiting out transition_timeout.
    """
    name = unique_name('mute')
    mute = RosProcess([sys.executable, str(Path(__file__).with_name('mute_lifecycle_node.py')),
                       name], name)
    procs.append(mute)
    assert mute.wait_for_output('READY', 30), mute.output()
    client = LifecycleClient(ros.node, f'/{name}', transition_timeout=20.0)
    try:
        assert client.change_state(CONFIGURE) is True
        assert 'TRANSITION 1 -> inactive' in mute.output()
        assert client.get_state() == 'inactive'
    finally:
        client.destroy()


def test_a_missing_node_is_reported_unreachable(ros):
    name = unique_name('nobody')
    client = LifecycleClient(ros.node, name, service_wait_timeout=0.3)
    assert client.wait_for_service() is False
    with pytest.raises(ServiceUnavailable) as caught:
        client.get_state()
    assert caught.value.reason == (f'service /{name}/get_state not available after 0.3 s '
                                   '(is the node running?)')
    assert caught.value.state == 'unreachable'
    with pytest.raises(ServiceUnavailable) as caught:
        client.transition(CONFIGURE)
    assert str(caught.value) == (f'configure of /{name} failed '
                                 f'(service /{name}/change_state not available after 0.3 s)')
    assert isinstance(caught.value, LifecycleError)
    client.destroy()


def test_get_states_asks_several_nodes_at_once(ros, procs, record):
    a, b = start_node(procs, record), start_node(procs, record)
    clients = [LifecycleClient(ros.node, n) for n in (a.fqn, b.fqn, unique_name('nobody'))]
    assert clients[0].wait_for_service() and clients[1].wait_for_service()
    assert clients[0].transition(CONFIGURE) == 'inactive'
    states = get_states(clients, timeout=5.0)
    assert states == {a.fqn: 'inactive', b.fqn: 'unconfigured', clients[2].node_name: None}
    for client in clients:
        client.destroy()


def test_names_resolve_like_service_names(rclpy_context):
    import rclpy
    node = rclpy.create_node(unique_name('resolver'), namespace='/robot', context=rclpy_context)
    try:
        assert resolve_node_name(node, 'chat_node') == '/robot/chat_node'
        assert resolve_node_name(node, ' /other/chat_node/ ') == '/other/chat_node'
        client = LifecycleClient(node, 'chat_node')
        assert client.node_name == '/robot/chat_node'
        with pytest.raises(ValueError, match='not one of the standard transitions'):
            client.transition(99)
    finally:
        node.destroy_node()


def test_a_wait_ends_when_the_context_shuts_down(rclpy_context):
    import rclpy
    node = rclpy.create_node(unique_name('quitter'), context=rclpy_context)
    client = LifecycleClient(node, unique_name('nobody'), service_wait_timeout=60.0)
    # Without the shutdown this would wait 60 s and raise ServiceUnavailable instead.
    stopper = threading.Timer(0.5, rclpy.try_shutdown, kwargs={'context': rclpy_context})
    stopper.start()
    try:
        with pytest.raises(ShuttingDown):
            client.get_state()
    finally:
        stopper.join(timeout=5.0)
        node.destroy_node()
