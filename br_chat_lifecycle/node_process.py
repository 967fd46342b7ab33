# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The chat node as a child process (for the demo, the benchmarks and the tests).

    proc = NodeProcess({'model_path': model, 'n_parallel': 4}, name='chat_node')
    ...                      # talk to it with client.ChatClient
    proc.rss_mb(); proc.log_text(); proc.stop()   # SIGINT (what Ctrl-C / launch send)

Starts ``python -m br_chat_lifecycle.chat_node --ros-args -r __node:=NAME --params-file F``
with the parameters written to a YAML file (or a given params file), its output in a log file
(``log=False``: the parent's terminal). What ``ros2 run`` + a launch file do on a robot; here
without launch, which is not installable everywhere. Linux only for rss_mb/threads (/proc).
"""
import os
import signal
import subprocess
import sys
import tempfile
from typing import Dict, Optional, Sequence
import uuid

import yaml


def proc_status_field(pid: int, field: str) -> int:
    """Return a numeric field of /proc/<pid>/status (VmRSS in kB, Threads, ...)."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


class NodeProcess:
    """One ``chat_node`` process; ``params`` are written to a params file for it."""

    def __init__(self, params: Optional[Dict] = None, name: Optional[str] = None,
                 params_file: Optional[str] = None, extra_args: Sequence[str] = (),
                 log: bool = True, cwd: Optional[str] = None, env: Optional[Dict] = None):
        self.name = name or f'chat_node_{uuid.uuid4().hex[:6]}'
        self._dir = tempfile.mkdtemp(prefix='chat_node_')
        args = []
        if params_file:
            args += ['--params-file', params_file]
        if params is not None:
            self.params_file = os.path.join(self._dir, 'params.yaml')
            with open(self.params_file, 'w') as f:
                yaml.safe_dump({self.name: {'ros__parameters': dict(params)}}, f,
                               allow_unicode=True)
            args += ['--params-file', self.params_file]
        else:
            self.params_file = params_file
        self.log_path = os.path.join(self._dir, 'node.log') if log else None
        self._log = open(self.log_path, 'w') if log else None
        env = dict(os.environ if env is None else env, PYTHONUNBUFFERED='1',
                   RCUTILS_LOGGING_BUFFERED_STREAM='0')
        self.cmd = [sys.executable, '-m', 'br_chat_lifecycle.chat_node', '--ros-args',
                    '-r', f'__node:={self.name}', *args, *extra_args]
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT if log else None,
            cwd=cwd, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return proc_status_field(self.pid, 'VmRSS') / 1024.0

    def threads(self) -> int:
        return proc_status_field(self.pid, 'Threads')

    def log_text(self) -> str:
        if self._log is None:
            return ''
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT, then SIGKILL after ``timeout`` s; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to clean up (a crash)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)
