# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Re-running tools/setup.sh after a successful setup must be a fast no-op.

tools/run_tests.sh runs setup.sh right before pytest, so here every step must report
"up to date" (or "skipped", e.g. the ROS-wheel steps under a system ROS 2), and nothing built
(the generated interface extension, the llama.cpp library) may be touched.
"""
import glob
import importlib.util
import os
from pathlib import Path
import re
import subprocess
import time

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP = REPO_ROOT / 'tools' / 'setup.sh'
STEPS = {'venv', 'ros-wheels', 'cmake-fix', 'python-deps', 'llama-cpp-python', 'model',
         'colcon/jobot_ai_msgs', 'colcon/br_chat_lifecycle', 'env.sh'}
STEP_LINE = re.compile(r'^\[setup\] (\S+): (.*)$')


def built_artifacts():
    msgs_so = glob.glob(str(REPO_ROOT / 'install' / 'jobot_ai_msgs' / 'lib' / 'python3*' /
                            'site-packages' / 'jobot_ai_msgs' / '*.so'))
    spec = importlib.util.find_spec('llama_cpp')  # locate only
    llama_so = []
    for d in (spec.submodule_search_locations or []) if spec else []:
        llama_so += glob.glob(os.path.join(d, '**', 'libllama*.so*'), recursive=True)
    assert msgs_so, 'no generated python extension under install/jobot_ai_msgs: run setup first'
    assert llama_so, 'no libllama*.so in the llama_cpp package: run setup first'
    return sorted(msgs_so + llama_so)


def test_setup_rerun_is_a_noop(capsys):
    artifacts = built_artifacts()
    before = {p: os.stat(p).st_mtime_ns for p in artifacts}

    t0 = time.monotonic()
    proc = subprocess.run(['bash', str(SETUP)], cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    elapsed = time.monotonic() - t0
    with capsys.disabled():
        print(f'\n[test_setup_idempotent] tools/setup.sh re-run took {elapsed:.2f} s')

    out = proc.stdout
    assert proc.returncode == 0, f'setup.sh exited {proc.returncode}:\n{out}'
    steps = {}
    for line in out.splitlines():
        m = STEP_LINE.match(line)
        if m:
            steps.setdefault(m.group(1), []).append(m.group(2))
    missing = STEPS - steps.keys()
    assert not missing, f'steps not reported: {sorted(missing)}\n{out}'
    not_noop = {name: st for name, st in steps.items()
                if not all(s.startswith(('up to date', 'skipped')) for s in st)}
    assert not not_noop, (f'steps that did work on a re-run (inputs changed since the setup '
                          f'run by tools/run_tests.sh?): {not_noop}\n{out}')

    after = {p: os.stat(p).st_mtime_ns for p in artifacts}
    changed = [p for p in artifacts if before[p] != after[p]]
    assert not changed, f'rebuilt on a no-change re-run: {changed}'
