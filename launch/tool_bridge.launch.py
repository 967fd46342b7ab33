# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Chat node + example robot + tool bridge: instructions become ROS service calls.

    ros2 launch br_chat_lifecycle tool_bridge.launch.py model_path:=/models/qwen.gguf
    ros2 service call /tool_bridge/instruct jobot_ai_msgs/srv/Instruct \
        "{instruction: 'Switch on the light in the kitchen'}"

Includes chat_lifecycle.launch.py (the chat node and its lifecycle manager), and starts the
fake_robot example (services ~/set_light, ~/move_to, ~/say, ~/dock), the tool_bridge lifecycle
node (config/tool_bridge.yaml lists those services) and a second lifecycle manager for the
bridge (its configure waits for the robot's services; it needs the chat node only when an
instruction arrives).

Launch arguments:
  model_path          GGUF file; overrides chat_params_file ONLY when non-empty (default '')
  chat_params_file    chat node parameters (default <share>/config/br_chat.yaml)
  bridge_params_file  bridge parameters (default <share>/config/tool_bridge.yaml)
  namespace           namespace of all nodes (default '')
  autostart           'true': the manager brings both lifecycle nodes up at once (default 'true')
  dry_run             'true': the bridge reports the calls the model made, executes none
                      (default 'false')
  log_level           log level of the nodes (default 'info')

Works on Humble and Jazzy: only launch/launch_ros API present in both is used.
"""

import os

from br_chat_lifecycle.config_paths import package_config_file

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

PACKAGE = 'br_chat_lifecycle'
HERE = os.path.dirname(os.path.abspath(__file__))
CHAT_NODE = 'chat_node'
BRIDGE_NODE = 'tool_bridge'


def _true(text):
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def bridge_parameters(params_file, dry_run):
    """parameters= of the bridge: its YAML, then this launch's dry_run."""
    parameters = [params_file.strip()] if params_file.strip() else []
    parameters.append({'dry_run': _true(dry_run)})
    return parameters


def manager_parameters(autostart):
    """parameters= of the bridge's lifecycle manager."""
    return [package_config_file('lifecycle_manager.yaml'),
            {'node_names': [BRIDGE_NODE], 'autostart': _true(autostart)}]


def _launch_setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    namespace = arg('namespace')
    log_args = ['--ros-args', '--log-level', arg('log_level')]
    fake_robot = Node(
        package=PACKAGE, executable='fake_robot', name='fake_robot', namespace=namespace,
        arguments=log_args, output='screen')
    bridge = LifecycleNode(
        package=PACKAGE, executable='tool_bridge', name=BRIDGE_NODE, namespace=namespace,
        parameters=bridge_parameters(arg('bridge_params_file'), arg('dry_run')),
        arguments=log_args, output='screen')
    manager = Node(
        package=PACKAGE, executable='lifecycle_manager', name='lifecycle_manager_tools',
        namespace=namespace, parameters=manager_parameters(arg('autostart')),
        arguments=log_args, output='screen')
    return [fake_robot, bridge, manager]


def generate_launch_description():
    chat = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(HERE, 'chat_lifecycle.launch.py')),
        launch_arguments={
            'model_path': LaunchConfiguration('model_path'),
            'params_file': LaunchConfiguration('chat_params_file'),
            'namespace': LaunchConfiguration('namespace'),
            'node_name': CHAT_NODE,
            'autostart': LaunchConfiguration('autostart'),
            'log_level': LaunchConfiguration('log_level'),
        }.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument(
            'model_path', default_value='',
            description='GGUF model file; empty keeps the model_path of chat_params_file'),
        DeclareLaunchArgument(
            'chat_params_file', default_value=package_config_file('br_chat.yaml'),
            description='YAML parameter file of the chat node'),
        DeclareLaunchArgument(
            'bridge_params_file', default_value=package_config_file('tool_bridge.yaml'),
            description='YAML parameter file of the tool bridge'),
        DeclareLaunchArgument(
            'namespace', default_value='', description='Namespace of the nodes'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='Configure and activate the chat node and the bridge at once'),
        DeclareLaunchArgument(
            'dry_run', default_value='false',
            description='The bridge reports the tool calls but executes none'),
        DeclareLaunchArgument(
            'log_level', default_value='info', description='Log level of the nodes'),
        chat,
        OpaqueFunction(function=_launch_setup),
    ])
