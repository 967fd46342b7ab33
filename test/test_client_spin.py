# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
ChatClient's background spin thread survives what rclpy's MultiThreadedExecutor re-raises.

Real rclpy, one process: a ChatClient (own context, executor thread) and a publisher/service
in a second context. Without ``node_main.spin_until_shutdown`` the first exception ended the
thread and the client never received anything again (seen in CI as a whole test module whose
lifecycle replies stopped arriving).
"""
from br_chat_lifecycle.client import ChatClient
from chat_harness import call_retry, wait_until
from jobot_ai_msgs.action import LLMChatAction
from rclpy.action import ActionClient
from ros_helpers import RosClient, unique_name
from std_msgs.msg import String
from std_srvs.srv import Trigger


def make_peer() -> RosClient:
    """Start a publisher and a Trigger service on their own node, context and spin thread."""
    peer = RosClient(unique_name('spin_peer'))
    peer.pub = peer.node.create_publisher(String, '/spin_test/topic', 10)

    def trigger(request, response):
        response.success, response.message = True, 'answered'
        return response
    peer.node.create_service(Trigger, '/spin_test/trigger', trigger)
    return peer


def call_trigger(client: ChatClient) -> str:
    # call_retry: the peer may not yet have discovered this brand-new client (its reply is then
    # dropped); a dead spin thread gets no reply to any of the attempts
    cli = client.node.create_client(Trigger, '/spin_test/trigger')
    return call_retry(cli, Trigger.Request(), 'the Trigger call').message


def test_a_raising_callback_does_not_end_the_spin_thread():
    peer, client = make_peer(), ChatClient(name='spin_victim')
    try:
        received = []

        def callback(msg):
            received.append(msg.data)
            if msg.data == 'boom':
                raise ValueError('a user callback failed')

        client.node.create_subscription(String, '/spin_test/topic', callback, 10)
        wait_until(lambda: peer.pub.get_subscription_count() > 0, 'the subscription matched', 20)
        peer.pub.publish(String(data='boom'))
        wait_until(lambda: 'boom' in received, 'the raising callback ran', 20)
        # the client still receives: a message and a service reply after the exception
        peer.pub.publish(String(data='after'))
        wait_until(lambda: 'after' in received, 'a message after the exception', 20)
        assert call_trigger(client) == 'answered'
        assert client._thread.is_alive()
    finally:
        client.close()
        peer.close()
    assert not client._thread.is_alive()      # close() still ends it


def test_action_clients_destroyed_while_spinning_do_not_end_the_spin_thread():
    peer, client = make_peer(), ChatClient(name='spin_victim')
    try:
        for _ in range(200):     # each destroy races the executor's wait-set construction
            ActionClient(client.node, LLMChatAction, '/spin_test/action').destroy()
        assert call_trigger(client) == 'answered'
        assert client._thread.is_alive()
    finally:
        client.close()
        peer.close()
