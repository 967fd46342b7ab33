# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
br_chat_lifecycle.diagnostics_compat: the stand-in Updater on a real rclpy graph.

The CompatUpdater is tested directly (so this also runs where the real diagnostic_updater is
installed); a real rclpy node publishes, a second node in the same process subscribes to
/diagnostics. No timing assertions beyond bounded waits.
"""


import pytest

pytest.importorskip('rclpy')
pytest.importorskip('diagnostic_msgs')

from br_chat_lifecycle import diagnostics_compat  # noqa: E402, I100 (after importorskip)
from br_chat_lifecycle.diagnostics_compat import (CompatDiagnosticStatusWrapper,  # noqa: E402
                                                  CompatUpdater, make_updater)
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import status_level, status_values, unique_name, wait_until  # noqa


def make_node(ros, name=None, parameter_overrides=None):
    """Create a node in the RosClient's context, spun by its executor."""
    import rclpy
    node = rclpy.create_node(name or unique_name('diag_node'), context=ros.context,
                             parameter_overrides=parameter_overrides or [])
    ros.executor.add_node(node)
    return node


def drop_node(ros, node):
    ros.executor.remove_node(node)
    node.destroy_node()


def chat_status(stat):
    stat.summary(DiagnosticStatus.WARN, 'model loading')
    stat.add('queue_depth', 3)
    stat.add('model', 'tiny.gguf')
    return stat


def test_force_update_publishes_named_status_with_hardware_id(ros):
    node = make_node(ros)
    # Long period: whatever arrives below was published by add()/force_update().
    updater = CompatUpdater(node, period=60.0)
    updater.setHardwareID('test-hw')
    updater.add('LLM chat', chat_status)
    name = f'{node.get_name()}: LLM chat'

    # add() announces the task at once, like the real updater.
    assert ros.wait_for_status(name, lambda s: s.message == 'Node starting up', 10.0)

    updater.force_update()
    status = ros.wait_for_status(name, lambda s: s.message == 'model loading', 10.0)
    assert status is not None
    assert status.hardware_id == 'test-hw'
    assert status_level(status) == 1
    assert status_values(status) == {'queue_depth': '3', 'model': 'tiny.gguf'}
    drop_node(ros, node)


def test_make_updater_uses_the_period_parameter_given_to_the_node(ros):
    # What the nodes rely on: make_updater(node), period from the node's parameters.
    node = make_node(ros, parameter_overrides=[
        Parameter('diagnostic_updater.period', Parameter.Type.DOUBLE, 0.2)])
    updater = make_updater(node)
    if not diagnostics_compat.HAVE_REAL_DIAGNOSTIC_UPDATER:
        assert isinstance(updater, CompatUpdater)
    assert node.get_parameter('diagnostic_updater.period').value == 0.2
    updater.setHardwareID('none')
    updater.add('ticker', lambda stat: (stat.summary(DiagnosticStatus.OK, 'tick'), stat)[1])
    name = f'{node.get_name()}: ticker'
    # Only the timer publishes 'tick' (nothing calls force_update here): it runs.
    assert wait_until(
        lambda: len([s for s in ros.statuses(name) if s.message == 'tick']) >= 2,
        'two ticks', 5.0, 0.1, raise_=False)
    drop_node(ros, node)


def test_make_updater_declares_the_period_with_its_default(ros):
    node = make_node(ros)
    make_updater(node)
    assert node.get_parameter('diagnostic_updater.period').value == 1.0
    drop_node(ros, node)


def test_a_task_that_sets_nothing_reports_error(ros):
    # As in the real updater, a status starts as ERROR / 'No message was set'.
    node = make_node(ros)
    updater = CompatUpdater(node, period=60.0)
    updater.setHardwareID('hw')
    updater.add('lazy', lambda stat: stat)
    updater.force_update()
    status = ros.wait_for_status(f'{node.get_name()}: lazy',
                                 lambda s: s.message == 'No message was set', 10.0)
    assert status is not None and status_level(status) == 2
    assert status.hardware_id == 'hw'
    drop_node(ros, node)


def test_status_wrapper_summary_and_add():
    # The two helpers the tasks use (chat_diagnostics.fill_status, the lifecycle manager).
    stat = CompatDiagnosticStatusWrapper()
    stat.summary(DiagnosticStatus.WARN, 'slow')
    assert (stat.level, stat.message) == (DiagnosticStatus.WARN, 'slow')
    stat.summary(2, 'int levels work too')
    assert (stat.level, stat.message) == (DiagnosticStatus.ERROR, 'int levels work too')
    stat.add('n', 1.5)
    stat.add('active', True)
    assert status_values(stat) == {'n': '1.5', 'active': 'True'}
