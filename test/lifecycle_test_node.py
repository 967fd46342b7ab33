#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A plain, standard rclpy lifecycle node used by the lifecycle-manager tests.

Run it as its own process:

    python test/lifecycle_test_node.py --ros-args -r __node:=name -p fail_on:=configure

Parameters (read at each transition, so they can also be changed with ``ros2 param set``):
  fail_on      transition whose callback returns FAILURE ('' = none): configure, activate,
               deactivate, cleanup or shutdown
  hang_on      transition whose callback blocks for ``hang_s`` seconds before succeeding; the
               node runs a single-threaded executor, so it answers nothing meanwhile, exactly
               like a node stuck loading a model
  hang_s       seconds to block in ``hang_on`` (default 30)
  record_file  file to which one line ``<node name> <transition>`` is appended per transition
               callback; several nodes can share one file and the line order is the global order
               in which their callbacks ran (single short O_APPEND writes do not interleave)

Every transition is also printed on stdout as ``TRANSITION <node name> <transition>``.
Nothing here is specific to the chat node: it is the smallest standard lifecycle node.
"""

import os
import sys
import time

from br_chat_lifecycle import node_main
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn


class LifecycleTestNode(LifecycleNode):

    def __init__(self):
        super().__init__('lifecycle_test_node')
        self.declare_parameter('fail_on', '')
        self.declare_parameter('hang_on', '')
        self.declare_parameter('hang_s', 30.0)
        self.declare_parameter('record_file', '')
        print(f'READY {self.get_fully_qualified_name()}', flush=True)

    def _transition(self, name):
        self._record(name)
        if self.get_parameter('hang_on').value == name:
            time.sleep(float(self.get_parameter('hang_s').value))
        if self.get_parameter('fail_on').value == name:
            self.get_logger().error(f'{name}: failing on purpose (fail_on:={name})')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _record(self, name):
        line = f'{self.get_fully_qualified_name()} {name}\n'
        print(f'TRANSITION {line}', end='', flush=True)
        path = self.get_parameter('record_file').value
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def on_configure(self, state):
        return self._transition('configure')

    def on_activate(self, state):
        return self._transition('activate')

    def on_deactivate(self, state):
        return self._transition('deactivate')

    def on_cleanup(self, state):
        return self._transition('cleanup')

    def on_shutdown(self, state):
        return self._transition('shutdown')


def main(args=None):
    """Run the test node until shutdown."""
    node_main.run(LifecycleTestNode, args, make_executor=SingleThreadedExecutor)


if __name__ == '__main__':
    main(sys.argv)
