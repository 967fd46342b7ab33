# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
reply_tracking.ChatActionServer's record of result requests stays bounded.

Real rclpy in one process: a ChatActionServer and an ActionClient in one context, spun by a
MultiThreadedExecutor thread. (The node-level behaviour - a result asked for after shutdown
began still arrives - is test_robustness.py's.)
"""
import threading

from br_chat_lifecycle.node_main import spin_until_shutdown
from br_chat_lifecycle.reply_tracking import ChatActionServer, ReplyTracker
from chat_harness import GraphClient, wait_until
from jobot_ai_msgs.action import LLMChatAction
import rclpy
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from ros_helpers import unique_name


def test_result_requests_of_expired_goals_are_forgotten():
    # A result request that comes after its goal ended (a second one, or a late client) is
    # recorded as asked; once rclpy has forgotten the goal (result_timeout), the next goal's end
    # forgets it too - before, the record grew by one entry per such request, for good.
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(unique_name('tracking'), context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=spin_until_shutdown, daemon=True,
                              args=(executor, context, node.get_logger()))
    thread.start()
    try:
        def execute(goal_handle):
            goal_handle.succeed()
            return LLMChatAction.Result(response=goal_handle.request.prompt, success=True)
        name = f'/{unique_name("tracking")}'
        server = ChatActionServer(node, LLMChatAction, name, execute_callback=execute,
                                  callback_group=ReentrantCallbackGroup(), result_timeout=1,
                                  tracker=ReplyTracker())
        client = ActionClient(node, LLMChatAction, name)
        assert client.wait_for_server(timeout_sec=20)

        def run_goal(prompt):
            handle = GraphClient.wait_future(client.send_goal_async(
                LLMChatAction.Goal(prompt=prompt)), 20, 'the goal response')
            result = GraphClient.wait_future(handle.get_result_async(), 20, 'the result')
            assert result.result.response == prompt
            return handle

        first = run_goal('first')
        again = GraphClient.wait_future(first.get_result_async(), 20, 'the result again')
        assert again.result.response == 'first'
        first_id = bytes(first.goal_id.uuid)
        assert first_id in server._asked        # asked after its goal ended
        wait_until(lambda: first_id not in server._goal_handles, 'the first goal expired', 20)
        run_goal('second')
        assert not server._asked, server._asked
        assert server.wait_results_requested(5.0)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        thread.join(5)
