"""The main job: bring the chat node up with the default model and chat with it.

  python -m br_chat_lifecycle.demo ["your question"]      (tools/run_demo.sh does this)

Starts ``chat_node`` as its own process with config/br_chat.yaml, drives it through the
standard lifecycle services exactly as ``ros2 lifecycle set chat_node configure|activate``
does, asks one question through ``chat_service`` and one through the streaming
``chat_action`` (printing the answer as it is generated), shows a two-turn session, then
takes the node down (deactivate, cleanup, shutdown) and stops the process.
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.action import ActionClient

from jobot_ai_msgs.action import LLMChatAction
from jobot_ai_msgs.srv import LLMChat

from .settings import default_model_path


def _config_file() -> str:
    try:
        from ament_index_python.packages import get_package_share_directory
        path = os.path.join(get_package_share_directory('br_chat_lifecycle'), 'config',
                            'br_chat.yaml')
        if os.path.isfile(path):
            return path
    except Exception:
        pass
    return str(Path(__file__).resolve().parent.parent / 'config' / 'br_chat.yaml')


class Demo:

    def __init__(self, node_name: str):
        self.name = node_name
        self.node = rclpy.create_node('br_chat_demo')

    def call(self, client, request, timeout: float):
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        if not future.done():
            raise RuntimeError(f'no answer from {client.srv_name} within {timeout} s')
        return future.result()

    def transition(self, label: str, transition_id: int) -> None:
        client = self.node.create_client(ChangeState, f'/{self.name}/change_state')
        if not client.wait_for_service(timeout_sec=30.0):
            raise RuntimeError(f'/{self.name}/change_state not available')
        t0 = time.monotonic()
        ok = self.call(client, ChangeState.Request(transition=Transition(id=transition_id)),
                       120.0).success
        state = self.call(self.node.create_client(GetState, f'/{self.name}/get_state'),
                          GetState.Request(), 10.0).current_state.label
        print(f'$ ros2 lifecycle set {self.name} {label:<10} -> '
              f'{"ok" if ok else "FAILED"} ({time.monotonic() - t0:.2f} s), state {state}')
        if not ok:
            raise RuntimeError(f'{label} failed: see the node log above')

    def ask(self, prompt: str, session: str = '') -> None:
        client = self.node.create_client(LLMChat, 'chat_service')
        client.wait_for_service(timeout_sec=10.0)
        print(f'\n[chat_service{" session " + session if session else ""}] you: {prompt}')
        r = self.call(client, LLMChat.Request(prompt=prompt, session_id=session), 300.0)
        if not r.success:
            raise RuntimeError(f'chat_service error: {r.error}')
        print(f'robot: {r.response}')
        print(f'  ({r.finish_reason}; {r.prompt_tokens} prompt + {r.completion_tokens} reply '
              f'tokens in {r.latency_s:.2f} s)')

    def stream(self, prompt: str) -> None:
        client = ActionClient(self.node, LLMChatAction, 'chat_action')
        client.wait_for_server(timeout_sec=10.0)
        print(f'\n[chat_action, streamed] you: {prompt}\nrobot: ', end='', flush=True)
        parts = []

        def feedback(msg):
            parts.append(msg.feedback.partial)
            print(msg.feedback.partial, end='', flush=True)
        send = client.send_goal_async(LLMChatAction.Goal(prompt=prompt),
                                      feedback_callback=feedback)
        rclpy.spin_until_future_complete(self.node, send, timeout_sec=10.0)
        handle = send.result()
        if handle is None or not handle.accepted:
            raise RuntimeError('chat_action goal rejected')
        res_future = handle.get_result_async()
        rclpy.spin_until_future_complete(self.node, res_future, timeout_sec=300.0)
        result = res_future.result().result
        deadline = time.monotonic() + 2.0   # feedback and result use different topics
        while ''.join(parts) != result.response and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
        print(f'\n  ({len(parts)} feedback messages; first text after '
              f'{result.time_to_first_token_s:.2f} s; {result.completion_tokens} tokens in '
              f'{result.latency_s:.2f} s; streamed text == result: '
              f'{"".join(parts) == result.response})')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('prompt', nargs='*', help='question for the service call')
    parser.add_argument('--model', default='', help='GGUF file (default: SmolLM2-135M)')
    parser.add_argument('--params-file', default=_config_file())
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    name = 'chat_node'
    print(f'model: {model or "(not found!)"}\nparams: {args.params_file}')
    cmd = [sys.executable, '-m', 'br_chat_lifecycle.chat_node', '--ros-args',
           '-r', f'__node:={name}', '--params-file', args.params_file,
           '-p', f'model_path:={model}']
    print('$ ' + ' '.join(cmd[:3]) + ' ' + ' '.join(cmd[3:]))
    proc = subprocess.Popen(cmd)
    rclpy.init()
    demo = Demo(name)
    code = 0
    try:
        demo.transition('configure', Transition.TRANSITION_CONFIGURE)
        demo.transition('activate', Transition.TRANSITION_ACTIVATE)
        demo.ask(' '.join(args.prompt) or 'What is ROS 2? Answer in two sentences.')
        demo.stream('你好，请介绍一下你自己')
        demo.ask('My robot is called Jobot. Remember that.', session='demo')
        demo.ask('What is my robot called?', session='demo')
        print()
        demo.transition('deactivate', Transition.TRANSITION_DEACTIVATE)
        demo.transition('cleanup', Transition.TRANSITION_CLEANUP)
        demo.transition('shutdown', Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    except (RuntimeError, KeyboardInterrupt) as e:
        print(f'\ndemo stopped: {e}', file=sys.stderr)
        code = 1
    finally:
        demo.node.destroy_node()
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return code


if __name__ == '__main__':
    sys.exit(main())
