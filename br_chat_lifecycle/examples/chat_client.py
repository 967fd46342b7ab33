"""Service client for chat_service (console script ``chat_client``).

Better than the vendor's example: shows errors and finish reasons, keeps a session, has a
timeout, and without a prompt argument runs an interactive multi-turn chat.

  chat_client "What is ROS 2?"
  chat_client --session kitchen-robot            # interactive; 'reset' clears the session
"""
import argparse
import sys
import uuid

import rclpy
from rclpy.node import Node

from jobot_ai_msgs.srv import LLMChat


def _ask(node: Node, client, prompt: str, session: str, reset: bool, timeout: float):
    request = LLMChat.Request(prompt=prompt, session_id=session, reset_session=reset)
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        client.remove_pending_request(future)
        return None
    return future.result()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('prompt', nargs='*', help='prompt (omit for an interactive chat)')
    parser.add_argument('--service', default='chat_service')
    parser.add_argument('--session', default='',
                        help='session id for multi-turn memory (interactive default: random)')
    parser.add_argument('--reset', action='store_true', help='clear the session first')
    parser.add_argument('--timeout', type=float, default=300.0, help='seconds per reply')
    args, ros_args = parser.parse_known_args(argv)

    rclpy.init(args=ros_args)
    node = rclpy.create_node('chat_client')
    client = node.create_client(LLMChat, args.service)
    code = 0
    try:
        if not client.wait_for_service(timeout_sec=10.0):
            print(f'error: service {args.service} is not available (is the node active?)',
                  file=sys.stderr)
            return 2
        if args.prompt:
            prompts = iter([' '.join(args.prompt)])
            session = args.session
        else:
            session = args.session or f'cli-{uuid.uuid4().hex[:8]}'
            print(f'session {session}; empty line or Ctrl-D quits, "reset" clears history')
            prompts = iter(lambda: input('you> '), '')
        reset = args.reset
        for prompt in prompts:
            if prompt.strip() == 'reset' and not args.prompt:
                prompt, reset = '', True
            result = _ask(node, client, prompt, session, reset, args.timeout)
            reset = False
            if result is None:
                print(f'error: no reply within {args.timeout} s', file=sys.stderr)
                code = 1
            elif not result.success:
                print(f'error ({result.finish_reason}): {result.error}', file=sys.stderr)
                if result.response:
                    print(f'partial reply: {result.response}')
                code = 1
            elif result.response or prompt:
                print(result.response)
                print(f'[{result.finish_reason}; {result.prompt_tokens} prompt + '
                      f'{result.completion_tokens} reply tokens; {result.latency_s:.2f} s]',
                      file=sys.stderr)
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
