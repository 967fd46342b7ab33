# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Reusable helpers for tests that run a real ROS 2 graph (processes + an rclpy client).

No mocks: nodes run as real processes, the test talks to them through real services/topics.
Every wait is bounded; nothing asserts on timing.

    from ros_helpers import RosClient, start_lifecycle_test_node, start_lifecycle_manager

    node = start_lifecycle_test_node(unique_name('a'))
    with RosClient() as ros:
        assert ros.wait_for_state(node.fqn, 'unconfigured')
    node.stop()

Each RosClient has its OWN rclpy Context, so it does not interfere with a context that another
fixture may have initialised, and several can coexist.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DIR = os.path.join(REPO_ROOT, 'test')
LIFECYCLE_TEST_NODE = os.path.join(TEST_DIR, 'lifecycle_test_node.py')

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# Keep test traffic on this machine (Iron+ variable; harmless on Humble).
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def unique_name(prefix):
    """Return a node name no test (or earlier run) uses: killed processes linger in discovery."""
    return f'{prefix}_{uuid.uuid4().hex[:8]}'


def wait_until(predicate, what, timeout=60.0, period=0.02, raise_=True, log=None):
    """
    Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` s pass.

    On timeout: raise AssertionError naming ``what`` (with the tail of ``log()``, a callable
    returning a node log, when given); with ``raise_=False`` return the last (falsy) value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if not raise_:
                return value
            tail = f'\n--- node log tail ---\n{log()[-3000:]}' if log else ''
            raise AssertionError(f'timed out after {timeout:.0f} s waiting for {what}{tail}')
        time.sleep(period)


def process_env(**extra):
    """Environment for child processes: repo root importable, unbuffered output."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    env['PYTHONUNBUFFERED'] = '1'
    env.update({k: str(v) for k, v in extra.items()})
    return env


def ros_param(name, value):
    """'-p' argument text for a parameter value (bool, number, str or list of those)."""
    def fmt(v):
        if isinstance(v, bool):
            return 'true' if v else 'false'
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"  # YAML single-quoted scalar
        return str(v)
    if isinstance(value, (list, tuple)):
        return f'{name}:=[{", ".join(fmt(v) for v in value)}]'
    return f'{name}:={fmt(value)}'


class RosProcess:
    """A child process whose combined output goes to a temporary file (no pipe to fill up)."""

    def __init__(self, cmd, name, env=None, cwd=REPO_ROOT):
        self.cmd = list(cmd)
        self.name = name
        self._log = tempfile.NamedTemporaryFile(
            prefix=f'{name}_', suffix='.log', delete=False)
        self.log_path = self._log.name
        self._final_output = None  # kept in memory once stopped; the file is then removed
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env or process_env(), cwd=cwd, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        if self._final_output is not None:
            return self._final_output
        with open(self.log_path, 'r', errors='replace') as f:
            return f.read()

    def wait_for_output(self, text, timeout):
        return wait_until(lambda: text in self.output() or not self.alive(),
                          f'{text!r} in the output of {self.name}', timeout, 0.1,
                          raise_=False) and text in self.output()

    def kill(self):
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout=10.0):
        """SIGINT (like Ctrl-C / launch), then SIGKILL if it does not exit within timeout."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._final_output is None:
            self._log.close()
            self._final_output = self.output()
            os.unlink(self.log_path)
        return self.proc.returncode


def start_lifecycle_test_node(name, namespace='', record_file='', fail_on='', hang_on='',
                              hang_s=30.0):
    """Start test/lifecycle_test_node.py as a process; .fqn is its fully qualified name."""
    cmd = [sys.executable, LIFECYCLE_TEST_NODE, '--ros-args', '-r', f'__node:={name}',
           '-p', ros_param('fail_on', fail_on), '-p', ros_param('hang_on', hang_on),
           '-p', ros_param('hang_s', float(hang_s)),
           '-p', ros_param('record_file', record_file)]
    if namespace:
        cmd += ['-r', f'__ns:={namespace}']
    process = RosProcess(cmd, name)
    process.fqn = f'{namespace.rstrip("/")}/{name}' if namespace else f'/{name}'
    return process


def start_lifecycle_manager(name, node_names, **params):
    """Start br_chat_lifecycle.lifecycle_manager as a process (python -m, from the source tree)."""
    cmd = [sys.executable, '-m', 'br_chat_lifecycle.lifecycle_manager', '--ros-args',
           '-r', f'__node:={name}', '-p', ros_param('node_names', list(node_names))]
    for key, value in params.items():
        cmd += ['-p', ros_param(key, value)]
    process = RosProcess(cmd, name)
    process.fqn = f'/{name}'
    return process


class RosClient:
    """An rclpy node in its own context, spun by a background thread, with test helpers."""

    def __init__(self, name=None):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        from br_chat_lifecycle.node_main import spin_until_shutdown
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name or unique_name('test_client'), context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=spin_until_shutdown, daemon=True, args=(
            self.executor, self.context, self.node.get_logger()))
        self._thread.start()
        self._clients = {}
        self._lock = threading.Lock()
        self.diagnostics = []  # DiagnosticArray messages received (see subscribe_diagnostics)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    # -- services -----------------------------------------------------------------------------

    def client(self, srv_type, service):
        with self._lock:
            key = (srv_type, service)
            if key not in self._clients:
                self._clients[key] = self.node.create_client(srv_type, service)
            return self._clients[key]

    def call(self, srv_type, service, request=None, timeout=10.0, wait=10.0):
        """Call a service; returns the response or None (not available / no answer in time)."""
        client = self.client(srv_type, service)
        if not wait_until(client.service_is_ready, service, wait, 0.05, raise_=False):
            return None
        future = client.call_async(request if request is not None else srv_type.Request())
        if not wait_until(future.done, f'{service} reply', timeout, 0.02, raise_=False):
            client.remove_pending_request(future)
            return None
        return future.result()

    def trigger(self, service, timeout=60.0, wait=10.0):
        """Call a std_srvs/Trigger service; returns the response (or None)."""
        from std_srvs.srv import Trigger
        return self.call(Trigger, service, timeout=timeout, wait=wait)

    # -- lifecycle ----------------------------------------------------------------------------

    def get_state(self, node_fqn, timeout=5.0, wait=5.0):
        """Label of the node's current lifecycle state ('active', ...) or None."""
        from lifecycle_msgs.srv import GetState
        response = self.call(GetState, f'{node_fqn}/get_state', timeout=timeout, wait=wait)
        return None if response is None else response.current_state.label

    def change_state(self, node_fqn, transition_id, timeout=10.0, wait=5.0):
        """Request a transition directly (bypassing any manager); returns success or None."""
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request()
        request.transition.id = transition_id
        response = self.call(ChangeState, f'{node_fqn}/change_state', request,
                             timeout=timeout, wait=wait)
        return None if response is None else response.success

    def wait_for_state(self, node_fqn, label, timeout=15.0):
        """Return True once get_state reports `label` within timeout seconds."""
        return bool(wait_until(
            lambda: self.get_state(node_fqn, timeout=1.0, wait=1.0) == label,
            f'{node_fqn} {label}', timeout, 0.1, raise_=False))

    # -- diagnostics --------------------------------------------------------------------------

    def subscribe_diagnostics(self, topic='/diagnostics'):
        from diagnostic_msgs.msg import DiagnosticArray
        self.node.create_subscription(DiagnosticArray, topic, self.diagnostics.append, 50)

    def statuses(self, name):
        """Every DiagnosticStatus received so far whose name is `name`, oldest first."""
        return [s for array in list(self.diagnostics) for s in array.status if s.name == name]

    def wait_for_status(self, name, predicate, timeout=10.0):
        """First received status named `name` satisfying predicate(status), or None."""
        def find():
            for status in self.statuses(name):
                if predicate(status):
                    return status
            return None
        return wait_until(find, f'status {name}', timeout, 0.05, raise_=False)

    def clear_diagnostics(self):
        del self.diagnostics[:]


def status_values(status):
    """Return a DiagnosticStatus's key/values as a dict."""
    return {kv.key: kv.value for kv in status.values}


def status_level(status):
    """DiagnosticStatus.level as int (bytes on Humble)."""
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)
