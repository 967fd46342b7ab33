# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Static and (where launch_ros exists) dynamic checks of launch/*.launch.py.

(a) Runs everywhere: parses each launch file (AST, nothing imported) and checks that every
    executable it starts is a console_script of setup.py, every package named is this package,
    every config/launch file it refers to exists, and setup.py installs launch/ and config/.
(b) Needs launch_ros (a real Humble/Jazzy install; skipped otherwise): loads each launch
    description and resolves the chat_lifecycle OpaqueFunction with concrete arguments.
"""

import ast
import importlib.util
import os
import re
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_DIR = os.path.join(ROOT, 'launch')
CONFIG_DIR = os.path.join(ROOT, 'config')
LAUNCH_FILES = sorted(f for f in os.listdir(LAUNCH_DIR) if f.endswith('.launch.py'))
EXPECTED_LAUNCH_FILES = {
    'chat_lifecycle.launch.py', 'chat_service.launch.py', 'chat_action.launch.py'}


def package_name():
    return ElementTree.parse(os.path.join(ROOT, 'package.xml')).getroot().findtext('name')


def console_scripts():
    """Names of setup.py's console_scripts, read from its AST."""
    tree = ast.parse(open(os.path.join(ROOT, 'setup.py')).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    entries = ast.literal_eval(value)
                    return {e.split('=')[0].strip() for e in entries}
    raise AssertionError('setup.py has no console_scripts')


def keyword_constants(tree, keyword):
    """Return the string constants passed as keyword=... anywhere in the tree."""
    return [kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            for kw in node.keywords
            if kw.arg == keyword and isinstance(kw.value, ast.Constant)
            and isinstance(kw.value.value, str)]


def string_constants(tree):
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def parse(name):
    return ast.parse(open(os.path.join(LAUNCH_DIR, name)).read(), filename=name)


def test_the_expected_launch_files_exist():
    assert EXPECTED_LAUNCH_FILES <= set(LAUNCH_FILES)


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_executables_are_console_scripts(name):
    scripts = console_scripts()
    for executable in keyword_constants(parse(name), 'executable'):
        assert executable in scripts, f'{name}: executable {executable!r} not in setup.py'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_packages_are_this_package(name):
    tree = parse(name)
    packages = keyword_constants(tree, 'package')
    # PACKAGE = '...' (used as package=PACKAGE and for get_package_share_directory) too.
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'PACKAGE' for t in node.targets):
            packages.append(ast.literal_eval(node.value))
    for package in packages:
        assert package == package_name(), f'{name}: unknown package {package!r}'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_referenced_files_exist(name):
    for constant in string_constants(parse(name)):
        if re.fullmatch(r'[\w.-]+\.ya?ml', constant):
            assert os.path.isfile(os.path.join(CONFIG_DIR, constant)), \
                f'{name}: config/{constant} does not exist'
        if re.fullmatch(r'[\w.-]+\.launch\.py', constant):
            assert constant in LAUNCH_FILES, f'{name}: launch/{constant} does not exist'


def test_setup_py_installs_launch_and_config():
    text = open(os.path.join(ROOT, 'setup.py')).read()
    assert "glob('launch/*.launch.py')" in text
    assert "glob('config/*')" in text


# -- (b) with launch_ros ---------------------------------------------------------------------

def load_launch_module(name):
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'),
                                                  os.path.join(LAUNCH_DIR, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.launch
@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_launch_description_loads(name):
    pytest.importorskip('launch_ros')
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
    description = load_launch_module(name).generate_launch_description()
    assert isinstance(description, LaunchDescription)
    if name == 'chat_lifecycle.launch.py':
        arguments = {e.name for e in description.entities
                     if isinstance(e, DeclareLaunchArgument)}
        assert {'model_path', 'params_file', 'namespace', 'node_name', 'autostart',
                'log_level'} <= arguments
    else:
        assert any(isinstance(e, IncludeLaunchDescription) for e in description.entities)


def _resolve_chat_lifecycle(**arguments):
    """Run chat_lifecycle's OpaqueFunction with the given arguments; returns its actions."""
    from launch import LaunchContext
    module = load_launch_module('chat_lifecycle.launch.py')
    context = LaunchContext()
    values = {'model_path': '', 'params_file': '/tmp/params.yaml', 'namespace': '',
              'node_name': 'chat_node', 'autostart': 'true', 'log_level': 'info',
              'respawn': 'false'}
    values.update(arguments)
    context.launch_configurations.update(values)
    return module._launch_setup(context)


@pytest.mark.launch
def test_launch_setup_starts_a_lifecycle_node_and_the_manager():
    pytest.importorskip('launch_ros')
    from launch_ros.actions import LifecycleNode, Node
    actions = _resolve_chat_lifecycle(namespace='robot1', node_name='bot')
    assert len(actions) == 2
    assert isinstance(actions[0], LifecycleNode)
    assert isinstance(actions[1], Node)


@pytest.mark.launch
def test_empty_model_path_adds_no_override():
    pytest.importorskip('launch_ros')
    module = load_launch_module('chat_lifecycle.launch.py')
    assert module.chat_parameters('/cfg/br_chat.yaml', '') == ['/cfg/br_chat.yaml']
    assert module.chat_parameters('/cfg/br_chat.yaml', '  ') == ['/cfg/br_chat.yaml']


@pytest.mark.launch
def test_model_path_overrides_the_params_file():
    pytest.importorskip('launch_ros')
    module = load_launch_module('chat_lifecycle.launch.py')
    assert module.chat_parameters('/cfg/br_chat.yaml', '/models/m.gguf') == [
        '/cfg/br_chat.yaml', {'model_path': '/models/m.gguf'}]


@pytest.mark.launch
def test_manager_gets_the_node_name_and_autostart():
    pytest.importorskip('launch_ros')
    module = load_launch_module('chat_lifecycle.launch.py')
    yaml_file, overrides = module.manager_parameters('bot', 'false')
    assert yaml_file.endswith(os.path.join('config', 'lifecycle_manager.yaml'))
    assert overrides == {'node_names': ['bot'], 'autostart': False}
