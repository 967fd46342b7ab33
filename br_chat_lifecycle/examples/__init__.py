"""Example clients for the chat node (console scripts chat_client, chat_action_client, intent_client)."""
