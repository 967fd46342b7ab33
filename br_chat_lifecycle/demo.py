# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The main job: bring the chat node up with the default model and chat with it.

  python -m br_chat_lifecycle.demo ["your question"]      (tools/run_demo.sh does this)

Starts ``chat_node`` as its own process with config/br_chat.yaml, drives it through the
standard lifecycle services exactly as ``ros2 lifecycle set chat_node configure|activate``
does, asks one question through ``chat_service`` and one through the streaming
``chat_action`` (printing the answer as it is generated), shows a two-turn session, then
takes the node down (deactivate, cleanup, shutdown) and stops the process.
"""
import argparse
import sys
import time

from .client import ChatClient, ChatClientError
from .config_paths import package_config_file
from .lifecycle_client import (ACTIVATE, CLEANUP, CONFIGURE, DEACTIVATE, LifecycleError,
                               UNCONFIGURED_SHUTDOWN)
from .node_process import NodeProcess
from .settings import default_model_path

TRANSITIONS = {'configure': CONFIGURE, 'activate': ACTIVATE, 'deactivate': DEACTIVATE,
               'cleanup': CLEANUP, 'shutdown': UNCONFIGURED_SHUTDOWN}


class Demo:
    """The demo's conversation with the node, printed as it goes."""

    def __init__(self, node_name: str):
        self.name = node_name
        self.client = ChatClient(name='br_chat_demo', wait_timeout=30.0, timeout=300.0)

    def transition(self, label: str) -> None:
        lifecycle = self.client.lifecycle(self.name, transition_timeout=120.0)
        t0 = time.monotonic()
        error = None
        try:
            state = lifecycle.transition(TRANSITIONS[label])
        except LifecycleError as e:
            state, error = e.state, e
        print(f'$ ros2 lifecycle set {self.name} {label:<10} -> '
              f'{"FAILED" if error else "ok"} ({time.monotonic() - t0:.2f} s), state {state}')
        if error:
            raise RuntimeError(f'{label} failed ({error.reason}): see the node log above')

    def ask(self, prompt: str, session: str = '') -> None:
        print(f'\n[chat_service{" session " + session if session else ""}] you: {prompt}')
        r = self.client.chat(prompt, session_id=session)
        if not r.success:
            raise RuntimeError(f'chat_service error: {r.error}')
        print(f'robot: {r.response}')
        print(f'  ({r.finish_reason}; {r.prompt_tokens} prompt + {r.completion_tokens} reply '
              f'tokens in {r.latency_s:.2f} s)')

    def stream(self, prompt: str) -> None:
        print(f'\n[chat_action, streamed] you: {prompt}\nrobot: ', end='', flush=True)
        outcome = self.client.stream(prompt, exact_feedback=True,
                                     feedback=lambda text: print(text, end='', flush=True))
        result = outcome.result
        print(f'\n  ({len(outcome.partials)} feedback messages; first text after '
              f'{result.time_to_first_token_s:.2f} s; {result.completion_tokens} tokens in '
              f'{result.latency_s:.2f} s; streamed text == result: '
              f'{outcome.feedback_complete})')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('prompt', nargs='*', help='question for the service call')
    parser.add_argument('--model', default='', help='GGUF file (default: SmolLM2-135M)')
    parser.add_argument('--params-file', default=package_config_file('br_chat.yaml'))
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    name = 'chat_node'
    print(f'model: {model or "(not found!)"}\nparams: {args.params_file}')
    proc = NodeProcess(name=name, params_file=args.params_file, log=False,
                       extra_args=['-p', f'model_path:={model}'])
    print('$ ' + ' '.join(proc.cmd))
    demo = Demo(name)
    code = 0
    try:
        demo.transition('configure')
        demo.transition('activate')
        demo.ask(' '.join(args.prompt) or 'What is ROS 2? Answer in two sentences.')
        demo.stream('你好，请介绍一下你自己')
        demo.ask('My robot is called Jobot. Remember that.', session='demo')
        demo.ask('What is my robot called?', session='demo')
        print()
        demo.transition('deactivate')
        demo.transition('cleanup')
        demo.transition('shutdown')
    except (RuntimeError, ChatClientError, KeyboardInterrupt) as e:
        print(f'\ndemo stopped: {e}', file=sys.stderr)
        code = 1
    finally:
        demo.client.close()
        proc.stop()
    return code


if __name__ == '__main__':
    sys.exit(main())
