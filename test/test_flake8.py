# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""flake8 with ament_flake8's configuration over the package's sources (lint_targets.py)."""
from ament_flake8.main import main_with_errors
from lint_targets import linter_argv, REPO_ROOT
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    rc, errors = main_with_errors(argv=linter_argv())
    assert rc == 0, \
        'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
