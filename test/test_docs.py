"""The documentation lists every parameter the node declares, with the right default."""
from pathlib import Path

import yaml

from br_chat_lifecycle import settings

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
