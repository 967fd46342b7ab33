"""
Example clients for the chat node.

Console scripts chat_client, chat_action_client and intent_client.
"""
