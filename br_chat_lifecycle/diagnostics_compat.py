# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
diagnostic_updater, or a small stand-in for it when it is not installed.

Why this module exists
----------------------
``diagnostic_updater`` (ros/diagnostics) is an ordinary ROS package: every Humble/Jazzy install
has it (``ros-$ROS_DISTRO-diagnostic-updater``) and on such installs ``make_updater`` simply
returns the REAL ``diagnostic_updater.Updater``. It is, however, not published on PyPI, so an
environment that gets rclpy and the message packages from PyPI wheels (our CI and developer
machines without a system ROS 2) cannot import it. Only for that case this file carries a
hand-written ``CompatUpdater`` with exactly the part of the real API that this package uses, and
the same message shape on the wire:

* ``CompatUpdater(node, period=1.0)`` declares the parameter ``diagnostic_updater.period`` (a
  value given to the node wins, as for the real one) and runs its tasks from a timer with that
  period;
* ``setHardwareID(str)``, ``add(name, function)`` (the function fills and returns the status,
  using ``summary(level, message)`` and ``add(key, value)``) and ``force_update()``;
* ``add`` publishes an OK "Node starting up" status at once, as the real one does;
* each task starts from level ERROR / "No message was set" / the hardware id, its function
  fills it, and the status is published as ``"<node name>: <task name>"`` inside one
  ``diagnostic_msgs/DiagnosticArray`` (header stamped with the node clock) on the absolute topic
  ``/diagnostics`` through a NORMAL publisher, so it publishes in every lifecycle state of a
  lifecycle node (a lifecycle publisher would go silent while inactive).

Like the real one, an Updater has no destroy(): create it ONCE per node (in the constructor,
not in on_configure), otherwise the period parameter and the timer are created twice.

Use ``make_updater(node)`` (and the levels ``OK``, ``WARN``, ``ERROR``) from here; do not import
``diagnostic_updater`` directly, so the code runs in both kinds of environment.
"""

import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

try:  # A real ROS 2 install: use the real implementation.
    import diagnostic_updater as _real
except ImportError:  # PyPI-only environment (diagnostic_updater is not on PyPI).
    _real = None

HAVE_REAL_DIAGNOSTIC_UPDATER = _real is not None

PERIOD_PARAMETER = 'diagnostic_updater.period'

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


def _level_bytes(level):
    """Return a level (bytes on Humble, bytes or int on newer rclpy) as length-1 bytes."""
    if isinstance(level, (bytes, bytearray)):
        return bytes(level[:1]) or b'\x00'
    return bytes([int(level)])


class CompatDiagnosticStatusWrapper(DiagnosticStatus):
    """DiagnosticStatus with the two helpers of DiagnosticStatusWrapper that tasks use."""

    def summary(self, level, message):
        """Set the level (a DiagnosticStatus constant or an int) and the message."""
        self.level = _level_bytes(level)
        self.message = str(message)

    def add(self, key, value):
        """Append a key/value pair; the value is str()-ed (the real wrapper needs a str)."""
        self.values.append(KeyValue(key=str(key), value=str(value)))


class CompatUpdater:
    """
    Periodically runs diagnostic tasks and publishes them on /diagnostics.

    Same constructor and, for the methods listed in the module docstring, the same behaviour as
    diagnostic_updater.Updater. Thread-safe: tasks may be added and force_update() called from
    any thread.
    """

    def __init__(self, node, period=1.0):
        self._node = node
        self._hwid = ''
        self._tasks = []  # (name, function)
        self._lock = threading.Lock()
        # Depth 10: several forced updates in a row must not drop each other for a subscriber
        # that is a little late (the real Python updater uses depth 1, which is fine for it).
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        period = node.declare_parameter(PERIOD_PARAMETER, float(period)).value
        self._timer = node.create_timer(float(period), self.force_update)

    def setHardwareID(self, hwid):  # noqa: N802 (name of the real API)
        self._hwid = str(hwid)

    def add(self, name, function):
        """Add a task: function(stat) fills the status and returns it."""
        with self._lock:
            self._tasks.append((str(name), function))
        # As the real updater: announce the task at once.
        stat = self._new_status(name)
        stat.summary(OK, 'Node starting up')
        self._publish([stat])

    def force_update(self):
        """Run every task and publish the results now (the timer calls this too)."""
        with self._lock:
            tasks = list(self._tasks)
        statuses = []
        for name, function in tasks:
            stat = self._new_status(name)
            stat.summary(ERROR, 'No message was set')
            statuses.append(function(stat))
        if statuses:
            self._publish(statuses)

    def _new_status(self, name):
        stat = CompatDiagnosticStatusWrapper()
        stat.name = str(name)
        stat.hardware_id = self._hwid
        return stat

    def _publish(self, statuses):
        """Publish statuses in one DiagnosticArray, each named '<node name>: <task name>'."""
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        for stat in statuses:
            array.status.append(DiagnosticStatus(
                level=_level_bytes(stat.level),
                name=f'{self._node.get_name()}: {stat.name}',
                message=stat.message,
                hardware_id=stat.hardware_id,
                values=list(stat.values)))
        self._publisher.publish(array)


def make_updater(node):
    """
    Return the real diagnostic_updater.Updater(node) if installed, else a CompatUpdater.

    Its period is the ``diagnostic_updater.period`` parameter (default 1.0 s; a value given to
    the node, e.g. in a launch file, YAML or ``-p``, wins). Call once per node.
    """
    if HAVE_REAL_DIAGNOSTIC_UPDATER:
        return _real.Updater(node)
    return CompatUpdater(node)


__all__ = [
    'CompatDiagnosticStatusWrapper', 'CompatUpdater', 'ERROR', 'HAVE_REAL_DIAGNOSTIC_UPDATER',
    'OK', 'PERIOD_PARAMETER', 'WARN', 'make_updater',
]
