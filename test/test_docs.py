# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""The documentation lists every parameter the node declares, with the right default."""
from pathlib import Path

from br_chat_lifecycle import settings
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_readme_parameter_table_matches_settings():
    readme = (ROOT / 'README.md').read_text()
    for p in settings.PARAMS:
        assert f'| `{p.name}` |' in readme, f'README parameter table lacks {p.name}'


def test_intent_config_only_uses_known_parameters():
    data = yaml.safe_load((ROOT / 'config' / 'br_chat_intent.yaml').read_text())
    params = next(iter(data.values()))['ros__parameters']
    unknown = set(params) - set(settings.BY_NAME) - {'diagnostic_updater.period'}
    assert not unknown, unknown
    assert not settings.validate(params), settings.validate(params)


def test_yaml_and_readme_table_are_generated_from_settings():
    """
    Check that config/br_chat.yaml and README's table are generated from settings.PARAMS.

    param_docs writes them: regenerate with `python -m br_chat_lifecycle.param_docs --write`.
    """
    from br_chat_lifecycle import param_docs
    assert (ROOT / 'config' / 'br_chat.yaml').read_text(encoding='utf-8') == \
        param_docs.yaml_text(), 'config/br_chat.yaml is out of date'
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert param_docs.replace_table(readme) == readme, "README's parameter table is out of date"
