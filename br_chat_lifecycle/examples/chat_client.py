# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Service client for chat_service (console script ``chat_client``).

Better than the vendor's example: shows errors and finish reasons, keeps a session, has a
timeout, and without a prompt argument runs an interactive multi-turn chat.

  chat_client "What is ROS 2?"
  chat_client --max-tokens 32 --temperature 0 "Name three robots."
  chat_client --session kitchen-robot            # interactive; 'reset' clears the session
"""
import argparse
import sys
import uuid

from br_chat_lifecycle.client import ChatClient, ChatTimeout, NotAvailable


def add_request_options(parser):
    """Add the per-request generation options (0 / negative: the node's value)."""
    parser.add_argument('--max-tokens', type=int, default=0, help='cap on reply tokens')
    parser.add_argument('--temperature', type=float, default=-1.0, help='0 = greedy')
    parser.add_argument('--system-prompt', default='', help="instead of the node's")


def request_options(args) -> dict:
    return {'max_tokens': args.max_tokens, 'temperature': args.temperature,
            'system_prompt': args.system_prompt}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('prompt', nargs='*', help='prompt (omit for an interactive chat)')
    parser.add_argument('--service', default='chat_service')
    parser.add_argument('--session', default='',
                        help='session id for multi-turn memory (interactive default: random)')
    parser.add_argument('--reset', action='store_true', help='clear the session first')
    parser.add_argument('--timeout', type=float, default=300.0, help='seconds per reply')
    add_request_options(parser)
    args, ros_args = parser.parse_known_args(argv)

    client = ChatClient(service=args.service, name='chat_client', args=ros_args,
                        timeout=args.timeout)
    code = 0
    try:
        client.wait_for_service()
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
            try:
                result = client.chat(prompt, session_id=session, reset_session=reset,
                                     **request_options(args))
            except ChatTimeout:
                print(f'error: no reply within {args.timeout} s', file=sys.stderr)
                code = 1
                continue
            finally:
                reset = False
            if not result.success:
                print(f'error ({result.finish_reason}): {result.error}', file=sys.stderr)
                if result.response:
                    print(f'partial reply: {result.response}')
                code = 1
            elif result.response or prompt:
                print(result.response)
                print(f'[{result.finish_reason}; {result.prompt_tokens} prompt + '
                      f'{result.completion_tokens} reply tokens; {result.latency_s:.2f} s]',
                      file=sys.stderr)
    except NotAvailable as e:
        print(f'error: {e}', file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        client.close()
    return code


if __name__ == '__main__':
    sys.exit(main())
