# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Example clients for the chat node.

Console scripts chat_client, chat_action_client and intent_client.
"""
