# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""pydocstyle with ament_pep257's conventions over the package's sources (lint_targets.py)."""
from ament_pep257.main import main
from lint_targets import linter_argv, REPO_ROOT
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    rc = main(argv=linter_argv())
    assert rc == 0, 'Found code style errors / warnings'
