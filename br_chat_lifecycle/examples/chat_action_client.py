# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Streaming action client for chat_action (console script ``chat_action_client``).

Prints the reply as it is generated. Ctrl-C cancels the goal on the node (generation stops
within a token or two) and prints what was generated so far.

  chat_action_client "Tell me about robots" [--session s1] [--reset]
  chat_action_client --stream-unit sentence --max-tokens 64 "Tell me about robots"
"""
import argparse
import sys

from br_chat_lifecycle.client import ChatClient, ChatClientError, NotAvailable
from br_chat_lifecycle.examples.chat_client import add_request_options, request_options


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('prompt', nargs='*', default=['你好，请介绍一下你自己'])
    parser.add_argument('--action', default='chat_action')
    parser.add_argument('--session', default='')
    parser.add_argument('--reset', action='store_true')
    parser.add_argument('--timeout', type=float, default=300.0, help='seconds for the reply')
    parser.add_argument('--stream-unit', default='', choices=['', 'token', 'sentence'],
                        help='feedback per token piece (default) or per sentence')
    add_request_options(parser)
    args, ros_args = parser.parse_known_args(argv)

    # exact_feedback: every partial is printed, also those arriving after the result
    client = ChatClient(action=args.action, name='chat_action_client', args=ros_args,
                        timeout=args.timeout, exact_feedback=True)
    goal = None
    code = 0
    try:
        goal = client.send_goal(' '.join(args.prompt), session_id=args.session,
                                reset_session=args.reset, stream_unit=args.stream_unit,
                                **request_options(args),
                                feedback=lambda text: print(text, end='', flush=True))
        outcome = goal.result()
    except KeyboardInterrupt:
        if goal is None or goal.handle is None:
            client.close()
            return 130
        print('\n[cancelling...]', file=sys.stderr)
        try:
            goal.cancel(timeout=5.0)
            outcome = goal.result(timeout=10.0)
        except ChatClientError as e:
            print(f'error: {e}', file=sys.stderr)
            client.close()
            return 130
        except KeyboardInterrupt:
            client.close()
            return 130
        code = 130
    except ChatClientError as e:
        print(f'\nerror: {e}', file=sys.stderr)
        client.close()
        return 2 if isinstance(e, NotAvailable) else 1
    try:
        result = outcome.result
        print()
        print(f'[{outcome.status}; {result.finish_reason}; {result.completion_tokens} tokens; '
              f'first text after {result.time_to_first_token_s:.2f} s; '
              f'{result.latency_s:.2f} s total]', file=sys.stderr)
        if not outcome.feedback_complete:
            print('[the feedback received does not add up to the result; result:]\n'
                  f'{result.response}', file=sys.stderr)
        if not result.success:
            print(f'error: {result.error}', file=sys.stderr)
            code = code or 1
        return code
    finally:
        client.close()


if __name__ == '__main__':
    sys.exit(main())
