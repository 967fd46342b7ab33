# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Instruction -> robot command (console script ``intent_client``).

Sends the sentence to chat_service with response_format "json_schema" and the robot command
schema (config/robot_command.schema.json), so the reply is JSON a behaviour tree can act on;
prints it (one line) and exits 0. On failure prints the error on stderr and exits non-zero.

  intent_client go to the kitchen and bring me a cup
  intent_client --node-default "去厨房拿一个杯子"        # use the node's own default schema
  intent_client --schema my_command.schema.json "stop"

Best with a node started from config/br_chat_intent.yaml (its system prompt teaches the
model the fields). Exit codes: 0 ok, 1 the request failed (error printed), 2 setup problem
(no service, unreadable schema file).
"""
import argparse
import json
import sys

from br_chat_lifecycle.client import ChatClient, ChatTimeout, NotAvailable
from br_chat_lifecycle.config_paths import resolve_config_file
from br_chat_lifecycle.grammars import parse_schema

# Relative: the installed share/br_chat_lifecycle/config/ copy, else ./config/ (a checkout).
DEFAULT_SCHEMA = 'config/robot_command.schema.json'


def load_schema(path: str):
    """Return (resolved path, schema text, parsed schema); raise ValueError with the reason."""
    resolved = resolve_config_file(path, 'schema file')
    try:
        with open(resolved, encoding='utf-8') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f'schema file {resolved!r} cannot be read: {e}') from e
    return resolved, text, parse_schema(text, f'schema file {resolved!r}')


def _schema_problem(value, schema):
    try:
        import jsonschema
    except ImportError:  # optional here: the node has validated the reply already
        return None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        return e.message
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sentence', nargs='+', help='the instruction (words are joined)')
    parser.add_argument('--service', default='chat_service')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--schema', default=DEFAULT_SCHEMA,
                       help='JSON Schema file sent with the request (a relative path is looked '
                            'up in the package share directory, then the current directory; '
                            'default: %(default)s)')
    group.add_argument('--node-default', action='store_true',
                       help="send no schema: use the node's json_schema_file")
    parser.add_argument('--pretty', action='store_true', help='indent the printed JSON')
    parser.add_argument('--timeout', type=float, default=120.0, help='seconds to wait')
    args, ros_args = parser.parse_known_args(argv)

    schema_text, schema = '', None
    if not args.node_default:
        try:
            _, schema_text, schema = load_schema(args.schema)
        except ValueError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2

    client = ChatClient(service=args.service, name='intent_client', args=ros_args)
    try:
        client.wait_for_service()
        result = client.chat(' '.join(args.sentence), timeout=args.timeout,
                             response_format='json_schema', json_schema=schema_text)
        if not result.success:
            print(f'error ({result.finish_reason}): {result.error}', file=sys.stderr)
            return 1
        try:
            command = json.loads(result.response)
        except ValueError as e:  # cannot happen with a correct node
            print(f'error: the reply is not JSON ({e}): {result.response!r}', file=sys.stderr)
            return 1
        problem = _schema_problem(command, schema) if schema is not None else None
        if problem:  # the node validates too; this only guards against a misconfigured one
            print(f'error: the reply does not match the schema: {problem}', file=sys.stderr)
            return 1
        print(json.dumps(command, ensure_ascii=False, indent=2 if args.pretty else None))
        print(f'[{result.completion_tokens} tokens; {result.latency_s:.2f} s]', file=sys.stderr)
        return 0
    except NotAvailable as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except ChatTimeout:
        print(f'error: no reply within {args.timeout} s', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    finally:
        client.close()


if __name__ == '__main__':
    sys.exit(main())
