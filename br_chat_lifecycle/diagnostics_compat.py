"""diagnostic_updater, or a small stand-in for it when it is not installed.

Why this module exists
----------------------
``diagnostic_updater`` (ros/diagnostics) is an ordinary ROS package: every Humble/Jazzy install
has it (``ros-$ROS_DISTRO-diagnostic-updater``) and on such installs this module simply hands
out the REAL ``diagnostic_updater.Updater`` and ``DiagnosticStatusWrapper``. It is, however,
not published on PyPI, so an environment that gets rclpy and the message packages from PyPI
wheels (our CI and developer machines without a system ROS 2) cannot import it. Only for that
case this file carries a hand-written ``CompatUpdater`` / ``CompatDiagnosticStatusWrapper`` with
the subset of the real API that this package uses, and the same message shape on the wire:

* ``Updater(node, period=1.0)`` declares the parameter ``diagnostic_updater.period`` (or reuses
  it when the node already declared it; the real Python Updater would raise in that case, see
  ``make_updater``) and runs ``update()`` from a timer with that period;
* ``setHardwareID(str)``, ``add(name, func)`` / ``add(task)``, ``removeByName(name)``,
  ``update()``, ``force_update()``, ``broadcast(level, msg)``, the ``period`` property;
* ``add`` publishes an OK "Node starting up" status at once, as the real one does;
* each task starts from level ERROR / "No message was set" / the hardware id, its function
  fills it, and the status is published as ``"<node name>: <task name>"`` inside one
  ``diagnostic_msgs/DiagnosticArray`` (header stamped with the node clock) on the absolute topic
  ``/diagnostics`` through a NORMAL publisher, so it publishes in every lifecycle state of a
  lifecycle node (a lifecycle publisher would go silent while inactive).

Like the real one, an Updater has no destroy(): create it ONCE per node (in the constructor,
not in on_configure), otherwise the period parameter and the timer are created twice.

Use ``make_updater(node)`` and ``DiagnosticStatusWrapper`` from here; do not import
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
STALE = DiagnosticStatus.STALE


def level_to_int(level):
    """Return a DiagnosticStatus level (bytes on Humble, bytes or int on newer rclpy) as int."""
    if isinstance(level, (bytes, bytearray)):
        return level[0] if level else 0
    return int(level)


def level_to_bytes(level):
    """Return a level in the form every rclpy accepts for the ``byte`` field (length-1 bytes)."""
    return bytes([level_to_int(level)])


class CompatDiagnosticStatusWrapper(DiagnosticStatus):
    """DiagnosticStatus with the helpers of diagnostic_updater.DiagnosticStatusWrapper.

    Levels may be given as the message constants (``DiagnosticStatus.OK`` ...) or as ints.
    """

    def summary(self, *args):
        """summary(status) copies level+message; summary(level, message) sets them."""
        if len(args) == 1:
            level, message = args[0].level, args[0].message
        elif len(args) == 2:
            level, message = args
        else:
            raise TypeError('summary() takes a status or (level, message)')
        self.level = level_to_bytes(level)
        self.message = str(message)

    def clearSummary(self):  # noqa: N802 (name of the real API)
        self.summary(OK, '')

    def mergeSummary(self, *args):  # noqa: N802 (name of the real API)
        """Merge a level/message into this one the way the real wrapper does.

        The higher level wins; when both are non-OK (or both OK) the messages are joined
        with '; ', otherwise the message of the higher level is kept.
        """
        if len(args) == 1:
            level, message = args[0].level, args[0].message
        elif len(args) == 2:
            level, message = args
        else:
            raise TypeError('mergeSummary() takes a status or (level, message)')
        new, old = level_to_int(level), level_to_int(self.level)
        if (new > 0) == (old > 0):
            if self.message:
                self.message += '; '
            self.message += str(message)
        elif new > old:
            self.message = str(message)
        if new > old:
            self.level = level_to_bytes(new)

    def add(self, key, value):
        """Append a key/value pair; the value is str()-ed (the real wrapper needs a str)."""
        self.values.append(KeyValue(key=str(key), value=str(value)))


class _Task:
    """A named diagnostic function (what the real DiagnosticTaskVector stores)."""

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn

    def run(self, stat):
        return self.fn(stat)


class CompatUpdater:
    """Periodically runs diagnostic tasks and publishes them on /diagnostics.

    Same constructor and methods as diagnostic_updater.Updater (the subset listed in the module
    docstring). Thread-safe: tasks may be added and force_update() called from any thread.
    """

    def __init__(self, node, period=1.0):
        self.node = node
        self.verbose = False
        self.hwid = ''
        self._tasks = []
        self._lock = threading.Lock()
        # Depth 10: several forced updates in a row must not drop each other for a subscriber
        # that is a little late (the real Python updater uses depth 1, which is fine for it).
        self.publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.period_parameter = PERIOD_PARAMETER
        if node.has_parameter(PERIOD_PARAMETER):
            value = node.get_parameter(PERIOD_PARAMETER).value
        else:
            value = node.declare_parameter(PERIOD_PARAMETER, float(period)).value
        self._period = float(value)
        self.timer = node.create_timer(self._period, self.update)

    # -- configuration ------------------------------------------------------------------------

    @property
    def period(self):
        return self._period

    @period.setter
    def period(self, period):
        self._period = float(period)
        self.node.destroy_timer(self.timer)
        self.timer = self.node.create_timer(self._period, self.update)

    def setHardwareID(self, hwid):  # noqa: N802 (name of the real API)
        self.hwid = str(hwid)

    def add(self, *args):
        """add(name, fn) with fn(stat) -> stat, or add(task) with task.name/getName() + run()."""
        if len(args) == 2:
            task = _Task(str(args[0]), args[1])
        elif len(args) == 1:
            obj = args[0]
            name = obj.getName() if hasattr(obj, 'getName') else obj.name
            task = _Task(str(name), obj.run)
        else:
            raise TypeError('add() takes (name, function) or (task)')
        with self._lock:
            self._tasks.append(task)
        # As the real updater: announce the task at once.
        stat = CompatDiagnosticStatusWrapper()
        stat.name = task.name
        stat.hardware_id = self.hwid
        stat.summary(OK, 'Node starting up')
        self.publish(stat)

    def removeByName(self, name):  # noqa: N802 (name of the real API)
        with self._lock:
            for i, task in enumerate(self._tasks):
                if task.name == name:
                    del self._tasks[i]
                    return True
        return False

    # -- publishing ---------------------------------------------------------------------------

    def update(self):
        """Run every task and publish the results (what the timer calls)."""
        with self._lock:
            tasks = list(self._tasks)
        statuses = []
        for task in tasks:
            stat = CompatDiagnosticStatusWrapper()
            stat.level = level_to_bytes(ERROR)
            stat.name = task.name
            stat.message = 'No message was set'
            stat.hardware_id = self.hwid
            result = task.run(stat)
            stat = stat if result is None else result
            if self.verbose and level_to_int(stat.level) != 0:
                self.node.get_logger().warning(
                    f'Non-zero diagnostic status. Name: {stat.name}, '
                    f'status {level_to_int(stat.level)}: {stat.message}')
            statuses.append(stat)
        if statuses:
            self.publish(statuses)

    def force_update(self):
        """Publish all tasks now, independent of the period."""
        self.update()

    def broadcast(self, level, message):
        """Publish one level/message for every task (e.g. before shutting down)."""
        with self._lock:
            names = [t.name for t in self._tasks]
        statuses = []
        for name in names:
            stat = CompatDiagnosticStatusWrapper()
            stat.name = name
            stat.hardware_id = self.hwid
            stat.summary(level, message)
            statuses.append(stat)
        if statuses:
            self.publish(statuses)

    def publish(self, msg):
        """Publish one status or a list of them, named '<node name>: <status name>'."""
        statuses = msg if isinstance(msg, list) else [msg]
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        for stat in statuses:
            array.status.append(DiagnosticStatus(
                level=level_to_bytes(stat.level),
                name=f'{self.node.get_name()}: {stat.name}',
                message=stat.message,
                hardware_id=stat.hardware_id,
                values=list(stat.values)))
        self.publisher.publish(array)


if HAVE_REAL_DIAGNOSTIC_UPDATER:
    Updater = _real.Updater
    DiagnosticStatusWrapper = _real.DiagnosticStatusWrapper
else:
    Updater = CompatUpdater
    DiagnosticStatusWrapper = CompatDiagnosticStatusWrapper


def make_updater(node, period=None):
    """Return the real diagnostic_updater.Updater(node) if installed, else a CompatUpdater.

    ``period`` (seconds) is the default of the ``diagnostic_updater.period`` parameter; a value
    given to the node (launch file, YAML, ``-p``) still wins. Call once per node.

    The real Python Updater declares ``diagnostic_updater.period`` unconditionally and raises if
    the node already declared it; so that both implementations behave the same, an existing
    declaration is removed first and its value passed on as the period.
    """
    if not HAVE_REAL_DIAGNOSTIC_UPDATER:
        return CompatUpdater(node, 1.0 if period is None else period)
    if node.has_parameter(PERIOD_PARAMETER):
        period = node.get_parameter(PERIOD_PARAMETER).value
        node.undeclare_parameter(PERIOD_PARAMETER)
    if period is None:
        return _real.Updater(node)
    try:
        return _real.Updater(node, period=float(period))
    except TypeError:  # an older diagnostic_updater without the period argument
        return _real.Updater(node)


__all__ = [
    'CompatDiagnosticStatusWrapper', 'CompatUpdater', 'DiagnosticStatusWrapper', 'ERROR',
    'HAVE_REAL_DIAGNOSTIC_UPDATER', 'OK', 'PERIOD_PARAMETER', 'STALE', 'Updater', 'WARN',
    'level_to_bytes', 'level_to_int', 'make_updater',
]
