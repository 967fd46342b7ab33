# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
An action client in a process of its own, for tests that kill it mid-stream.

Run as a script: ``python doomed_client.py ACTION TAG PROMPT`` sends one goal and prints
``FEEDBACK`` for every feedback message. From a test: ``start(action, prompt)`` starts it and
returns the process once its first feedback has arrived.
"""
import select
import subprocess
import sys
import time
import uuid


def start(action: str, prompt: str, timeout: float = 30.0) -> subprocess.Popen:
    """Start the client; return its process after its first feedback (AssertionError if none)."""
    proc = subprocess.Popen([sys.executable, __file__, action, uuid.uuid4().hex[:6], prompt],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, seen = time.monotonic() + timeout, []
    while not seen or seen[-1] != 'FEEDBACK':  # skip any log lines before it
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ''
        if not line:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f'the doomed client got no feedback in {timeout} s: {seen[-5:]}')
        seen.append(line.strip())
    return proc


def main() -> int:
    import rclpy
    from rclpy.action import ActionClient
    from jobot_ai_msgs.action import LLMChatAction
    action, tag, prompt = sys.argv[1:4]
    rclpy.init()
    node = rclpy.create_node('doomed_client_' + tag)
    client = ActionClient(node, LLMChatAction, action)
    if not client.wait_for_server(timeout_sec=20.0):
        print('NO_SERVER', flush=True)
        return 2
    client.send_goal_async(LLMChatAction.Goal(prompt=prompt),
                           feedback_callback=lambda msg: print('FEEDBACK', flush=True))
    rclpy.spin(node)
    return 0


if __name__ == '__main__':
    sys.exit(main())
