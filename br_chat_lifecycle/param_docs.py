# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
config/br_chat.yaml and README's parameter table, generated from settings.PARAMS.

The parameter table in settings.py is the one source: ``python -m
br_chat_lifecycle.param_docs --write`` regenerates both files, and test/test_docs.py fails
when either is out of date (so a parameter's name, default and description are written once).
"""
import argparse
import json
from pathlib import Path
import sys
import textwrap

from . import settings

YAML_HEADER = """\
# Parameters of br_chat_lifecycle's chat_node (every parameter, with its default).
# GENERATED from br_chat_lifecycle/settings.py by `python -m br_chat_lifecycle.param_docs --write`:
# edit settings.py, not this file.
# Use: ros2 run br_chat_lifecycle chat_node --ros-args --params-file config/br_chat.yaml
# The node name key must match the node's name (default chat_node); '/**' matches any node.
# 'configure': read at the configure transition.  'live': read for every request and can
# be changed at any time with `ros2 param set` (invalid values are refused with a reason).
/**:
  ros__parameters:
"""
YAML_FOOTER = """\
    # Period of the /diagnostics status (diagnostic_updater's own parameter).
    diagnostic_updater.period: 1.0
"""
TABLE_BEGIN = '<!-- parameter table: generated from settings.py, do not edit -->'
TABLE_END = '<!-- end of parameter table -->'


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return '[' + ', '.join(_yaml_value(v) for v in value) + ']'
    return repr(value)


def yaml_text() -> str:
    lines = [YAML_HEADER]
    for p in settings.PARAMS:
        comment = f'{p.description} [{p.when}]'
        for line in textwrap.wrap(comment, width=91):
            lines.append(f'    # {line}\n')
        lines.append(f'    {p.name}: {_yaml_value(p.default)}\n')
    lines.append(YAML_FOOTER)
    return ''.join(lines)


def _md_value(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return f'`{_yaml_value(value)}`'


def readme_table() -> str:
    rows = [TABLE_BEGIN, '| parameter | default | when | meaning |', '| --- | --- | --- | --- |']
    for p in settings.PARAMS:
        text = p.description.replace('|', '/')
        rows.append(f'| `{p.name}` | {_md_value(p.default)} | {p.when} | {text} |')
    rows.append('| `diagnostic_updater.period` | `1.0` | start | Seconds between '
                '`/diagnostics` (and `~/stats`) messages. |')
    rows.append(TABLE_END)
    return '\n'.join(rows) + '\n'


def replace_table(readme: str) -> str:
    """README text with the generated table between the markers."""
    start = readme.index(TABLE_BEGIN)
    end = readme.index(TABLE_END) + len(TABLE_END) + 1
    return readme[:start] + readme_table() + readme[end:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--write', action='store_true', help='rewrite the files')
    parser.add_argument('--root', default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args(argv)
    root = Path(args.root)
    yaml_path, readme_path = root / 'config' / 'br_chat.yaml', root / 'README.md'
    readme = readme_path.read_text(encoding='utf-8')
    stale = []
    if yaml_path.read_text(encoding='utf-8') != yaml_text():
        stale.append(yaml_path)
        if args.write:
            yaml_path.write_text(yaml_text(), encoding='utf-8')
    if replace_table(readme) != readme:
        stale.append(readme_path)
        if args.write:
            readme_path.write_text(replace_table(readme), encoding='utf-8')
    for path in stale:
        print(f'{"rewrote" if args.write else "out of date"}: {path}')
    return 1 if stale and not args.write else 0


if __name__ == '__main__':
    sys.exit(main())
