# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Start the node serving chat_action (jobot_ai_msgs/action/LLMChatAction).

    ros2 launch br_chat_lifecycle chat_action.launch.py model_path:=/models/qwen.gguf

The vendor's name for it. One chat node serves both the service and the action, so this is
chat_service.launch.py (chat_lifecycle.launch.py with autostart 'true'); every argument of
chat_lifecycle.launch.py is passed through from the command line.
"""

import os
import runpy

generate_launch_description = runpy.run_path(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'chat_service.launch.py'))[
        'generate_launch_description']
