# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Start the chat lifecycle node and the lifecycle manager that brings it up.

    ros2 launch br_chat_lifecycle chat_lifecycle.launch.py model_path:=/models/qwen.gguf

Launch arguments:
  model_path   GGUF file; overrides the params file ONLY when non-empty (default '')
  params_file  node parameters (default <share>/br_chat_lifecycle/config/br_chat.yaml)
  namespace    namespace of both nodes (default '')
  node_name    name of the chat node (default 'chat_node')
  autostart    'true': the manager configures and activates the node at once (default 'true')
  log_level    log level of both nodes (default 'info')
  respawn      'true': relaunch the chat node if its process dies; the manager then brings it
               back to active (attempt_respawn_reconnection) (default 'false')

Works on Humble and Jazzy: only launch/launch_ros API present in both is used
(LifecycleNode gets both name= and namespace=, which Humble requires).
"""

from br_chat_lifecycle.config_paths import package_config_file

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

PACKAGE = 'br_chat_lifecycle'


def _true(text):
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def chat_parameters(params_file, model_path):
    """parameters= of the chat node: the YAML, plus model_path only when it is non-empty."""
    parameters = [params_file.strip()] if params_file.strip() else []
    if model_path.strip():
        parameters.append({'model_path': model_path.strip()})
    return parameters


def manager_parameters(node_name, autostart):
    """parameters= of the lifecycle manager: its YAML, then this launch's node and autostart."""
    return [package_config_file('lifecycle_manager.yaml'),
            {'node_names': [node_name], 'autostart': _true(autostart)}]


def _launch_setup(context):
    """
    Build the two nodes from the resolved argument values (an OpaqueFunction).

    Resolving here (instead of passing substitutions through) is what lets an EMPTY model_path
    add no override at all, so the value in params_file stays in force.
    """
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    node_name = arg('node_name')
    namespace = arg('namespace')
    log_level = arg('log_level')

    chat_node = LifecycleNode(
        package=PACKAGE,
        executable='chat_node',
        name=node_name,
        namespace=namespace,
        parameters=chat_parameters(arg('params_file'), arg('model_path')),
        arguments=['--ros-args', '--log-level', log_level],
        respawn=_true(arg('respawn')),
        respawn_delay=2.0,
        output='screen',
    )

    # node_names is relative, so it resolves inside the same namespace as the chat node.
    lifecycle_manager = Node(
        package=PACKAGE,
        executable='lifecycle_manager',
        name='lifecycle_manager_chat',
        namespace=namespace,
        parameters=manager_parameters(node_name, arg('autostart')),
        arguments=['--ros-args', '--log-level', log_level],
        output='screen',
    )
    return [chat_node, lifecycle_manager]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            'model_path', default_value='',
            description='GGUF model file; empty keeps the model_path of params_file'),
        DeclareLaunchArgument(
            'params_file', default_value=package_config_file('br_chat.yaml'),
            description='YAML parameter file of the chat node'),
        DeclareLaunchArgument(
            'namespace', default_value='', description='Namespace of the nodes'),
        DeclareLaunchArgument(
            'node_name', default_value='chat_node', description='Name of the chat node'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='Configure and activate the chat node at once'),
        DeclareLaunchArgument(
            'log_level', default_value='info', description='Log level of the nodes'),
        DeclareLaunchArgument(
            'respawn', default_value='false',
            description='Relaunch the chat node if its process dies'),
        OpaqueFunction(function=_launch_setup),
    ])
