# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Start the node serving chat_action (jobot_ai_msgs/action/LLMChatAction).

    ros2 launch br_chat_lifecycle chat_action.launch.py model_path:=/models/qwen.gguf

One chat node serves both the service and the action, so this is chat_lifecycle.launch.py with
autostart forced to 'true'; every other argument of that file (model_path, params_file,
namespace, node_name, log_level, respawn) is passed through from the command line.
"""

import os

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

# Installed side by side in share/br_chat_lifecycle/launch (and so in the source tree).
HERE = os.path.dirname(os.path.abspath(__file__))


def generate_launch_description():
    return LaunchDescription([
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(HERE, 'chat_lifecycle.launch.py')),
            launch_arguments={'autostart': 'true'}.items(),
        ),
    ])
