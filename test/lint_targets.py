# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
What test_flake8.py and test_pep257.py check: the package's sources, in one place.

The linters get explicit paths, never the repo root: that holds .venv/, build/, install/ and
log/, which are not ours to lint.
"""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The package's Python sources, relative to REPO_ROOT.
PATHS = ['br_chat_lifecycle', 'test', 'launch', 'bench', 'setup.py'] + sorted(
    str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / 'tools').glob('*.py'))

# Never checked: the vendor's example clients, kept byte-identical to the vendor's copies.
VENDOR = ['test/vendor_clients']

# Not checked YET (issue #10): files that other branches were rewriting while the rest was
# cleaned up. Drop an entry once that file passes both linters. (Empty: everything is checked.)
IN_FLIGHT = []

EXCLUDES = VENDOR + IN_FLIGHT


def linter_argv():
    """Return the linters' arguments: the paths, then ``--exclude`` and absolute excludes."""
    return PATHS + ['--exclude'] + [str(REPO_ROOT / e) for e in EXCLUDES]
