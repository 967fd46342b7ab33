# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""flake8 with ament_flake8's configuration over the package's sources (lint_targets.py)."""
import multiprocessing

from ament_flake8.main import main_with_errors
from lint_targets import linter_argv, REPO_ROOT
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    # flake8 checks files in forked worker processes when it sees more than one CPU. A fork of
    # this pytest process after other tests ran rclpy nodes and executors in it can crash in
    # the child (seen: workers segfaulting in garbage collection, the pool then waiting for
    # ever), so flake8 is made to check the files here, serially.
    monkeypatch.setattr(multiprocessing, 'cpu_count', lambda: 1)
    monkeypatch.chdir(REPO_ROOT)
    rc, errors = main_with_errors(argv=linter_argv())
    assert rc == 0, \
        'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
