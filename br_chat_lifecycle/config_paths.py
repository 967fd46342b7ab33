# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Where the package's configuration files are: the one place that asks the ament index.

* ``config_file_candidates(path)``: where a file parameter such as ``json_schema_file`` is
  looked for (the installed share directory's ``config/``, the share directory, then the
  working directory); ``resolve_config_file`` picks the first that exists.
* ``package_config_file(name)``: the package's own ``config/<name>`` (launch files, the demo):
  the installed copy, else the source tree's (running from a checkout).

Light on purpose (``os`` and the ament index only), so launch files can import it.
"""
import os
from pathlib import Path
import stat
from typing import List, Optional

PACKAGE = 'br_chat_lifecycle'
SOURCE_CONFIG_DIR = Path(__file__).resolve().parent.parent / 'config'


def share_directory() -> Optional[str]:
    """Return the installed share directory, or None (not installed / no ament index)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(PACKAGE)
    except (ImportError, LookupError, ValueError):
        return None


def config_file_candidates(path: str) -> List[str]:
    """
    Where a json_schema_file / grammar_file parameter value is looked for, in order.

    Absolute (or ``~``) paths: only themselves. Relative paths: the package's installed share
    directory's ``config/`` and the share directory itself (from the ament index, when the
    package is installed), then the node's working directory. So ``robot_command.gbnf``,
    ``config/robot_command.gbnf`` and a path next to where the node was started all work.
    """
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return [path]
    share = share_directory()
    candidates = [] if share is None else [os.path.join(share, 'config', path),
                                           os.path.join(share, path)]
    candidates.append(os.path.abspath(path))
    return candidates


def resolve_config_file(path: str, what: str) -> str:
    """
    Return the first existing candidate for ``path`` (see config_file_candidates).

    Raises ValueError naming ``what``, the path and every place looked at.
    """
    candidates = config_file_candidates(path)
    for candidate in candidates:
        if os.path.exists(candidate):
            if not os.path.isfile(candidate):
                kind = ('a directory' if os.path.isdir(candidate) else
                        'a FIFO' if stat.S_ISFIFO(os.stat(candidate).st_mode) else
                        'a device or socket')
                raise ValueError(f'{what} {candidate!r} is {kind}, not a regular file')
            return candidate
    raise ValueError(f'{what} {path!r} not found (looked for {", ".join(candidates)})')


def package_config_file(name: str) -> str:
    """
    Return the installed ``<share>/config/<name>``, else the source tree's ``config/<name>``.

    The installed copy wins when it exists; the source tree's path is returned otherwise (also
    when neither exists, so an error message shows a path that means something).
    """
    share = share_directory()
    installed = None if share is None else os.path.join(share, 'config', name)
    if installed is not None and os.path.isfile(installed):
        return installed
    source = str(SOURCE_CONFIG_DIR / name)
    return source if os.path.isfile(source) or installed is None else installed
