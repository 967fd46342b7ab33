# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
from glob import glob

from setuptools import find_packages, setup

package_name = 'br_chat_lifecycle'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='br_chat_lifecycle developers',
    maintainer_email='dev@br-chat-lifecycle.invalid',
    description='Lifecycle-managed local LLM chat node (llama.cpp) for ROS 2',
    license='Apache-2.0',
    extras_require={
        'test': ['pytest', 'ament-flake8', 'ament-pep257', 'jsonschema', 'PyYAML', 'gguf'],
    },
    entry_points={
        'console_scripts': [
            'chat_node = br_chat_lifecycle.chat_node:main',
            'lifecycle_manager = br_chat_lifecycle.lifecycle_manager:main',
            'chat_client = br_chat_lifecycle.examples.chat_client:main',
            'chat_action_client = br_chat_lifecycle.examples.chat_action_client:main',
            'intent_client = br_chat_lifecycle.examples.intent_client:main',
            'demo = br_chat_lifecycle.demo:main',
            'tool_bridge = br_chat_lifecycle.tool_bridge:main',
            'fake_robot = br_chat_lifecycle.examples.fake_robot:main',
            'tts_bridge = br_chat_lifecycle.tts_bridge:main',
        ],
    },
)
