#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A stand-in lifecycle node whose change_state replies never arrive (test_lifecycle_client.py).

It serves ``<name>/change_state`` and ``<name>/get_state`` (lifecycle_msgs) as a plain node: a
transition moves it to the target state at once, but the change_state callback then blocks
until the process is stopped, so the client sees what a reply dropped by the middleware looks
like, while get_state keeps answering. Run as its own process (the test kills it):

    python test/mute_lifecycle_node.py <node name>
"""
import sys
import threading

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor

TARGETS = {Transition.TRANSITION_CONFIGURE: (State.PRIMARY_STATE_INACTIVE, 'inactive'),
           Transition.TRANSITION_ACTIVATE: (State.PRIMARY_STATE_ACTIVE, 'active')}


def main():
    name = sys.argv[1]
    rclpy.init()
    node = rclpy.create_node(name)
    state = {'now': (State.PRIMARY_STATE_UNCONFIGURED, 'unconfigured')}
    never = threading.Event()

    def change(request, response):
        state['now'] = TARGETS.get(request.transition.id, state['now'])
        print(f'TRANSITION {request.transition.id} -> {state["now"][1]}', flush=True)
        never.wait()
        return response

    def get(request, response):
        response.current_state.id, response.current_state.label = state['now']
        return response
    group = ReentrantCallbackGroup()
    node.create_service(ChangeState, f'{name}/change_state', change, callback_group=group)
    node.create_service(GetState, f'{name}/get_state', get, callback_group=group)
    print('READY', flush=True)
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.spin()


if __name__ == '__main__':
    main()
