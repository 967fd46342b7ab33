"""Streaming action client for chat_action (console script ``chat_action_client``).

Prints the reply as it is generated. Ctrl-C cancels the goal on the node (generation stops
within a token or two) and prints what was generated so far.

  chat_action_client "Tell me about robots" [--session s1] [--reset]
"""
import argparse
import sys

import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient

from jobot_ai_msgs.action import LLMChatAction

_STATUS = {GoalStatus.STATUS_SUCCEEDED: 'succeeded', GoalStatus.STATUS_ABORTED: 'aborted',
           GoalStatus.STATUS_CANCELED: 'canceled'}


def _spin_until(node, future, timeout=None):
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    return future.result() if future.done() else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('prompt', nargs='*', default=['你好，请介绍一下你自己'])
    parser.add_argument('--action', default='chat_action')
    parser.add_argument('--session', default='')
    parser.add_argument('--reset', action='store_true')
    args, ros_args = parser.parse_known_args(argv)

    rclpy.init(args=ros_args)
    node = rclpy.create_node('chat_action_client')
    client = ActionClient(node, LLMChatAction, args.action)
    handle = None
    code = 0
    try:
        if not client.wait_for_server(timeout_sec=10.0):
            print(f'error: action {args.action} is not available (is the node active?)',
                  file=sys.stderr)
            return 2
        goal = LLMChatAction.Goal(prompt=' '.join(args.prompt), session_id=args.session,
                                  reset_session=args.reset)
        handle = _spin_until(node, client.send_goal_async(
            goal, feedback_callback=lambda m: print(m.feedback.partial, end='', flush=True)),
            timeout=10.0)
        if handle is None or not handle.accepted:
            print('error: goal rejected (node not active?)', file=sys.stderr)
            return 1
        outcome = _spin_until(node, handle.get_result_async())
    except KeyboardInterrupt:
        if handle is None:
            return 130
        print('\n[cancelling...]', file=sys.stderr)
        try:
            _spin_until(node, handle.cancel_goal_async(), timeout=5.0)
            outcome = _spin_until(node, handle.get_result_async(), timeout=10.0)
        except KeyboardInterrupt:
            return 130
        code = 130
    try:
        if outcome is None:
            print('\nerror: no result', file=sys.stderr)
            return 1
        result = outcome.result
        print()
        print(f'[{_STATUS.get(outcome.status, outcome.status)}; {result.finish_reason}; '
              f'{result.completion_tokens} tokens; first text after '
              f'{result.time_to_first_token_s:.2f} s; {result.latency_s:.2f} s total]',
              file=sys.stderr)
        if not result.success:
            print(f'error: {result.error}', file=sys.stderr)
            code = code or 1
        return code
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
