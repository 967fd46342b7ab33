# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Output formats: free text, any JSON, JSON valid under a JSON Schema, or a GBNF grammar.

Constraining is llama.cpp's (grammars; JSON Schema -> GBNF by llama-cpp-python's converter,
reached through the engine's ``json_grammar``). This module only decides which format applies
to a request, loads/validates the files behind the node's defaults (a relative path is looked
up in the package's share directory, then the working directory: config_paths.py),
and checks a finished reply.
"""
from dataclasses import dataclass
import json
import os
from typing import Any, Optional

try:  # jsonschema gives precise validation errors; without it, JSON syntax is still checked
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None

from .config_paths import config_file_candidates, resolve_config_file  # noqa: F401 (API)
from .grammars import ByteLRU, check_gbnf, json_grammar, schema_to_gbnf

FORMATS = ('text', 'json', 'json_schema', 'grammar')


@dataclass(frozen=True)
class OutputFormat:
    name: str = 'text'
    grammar: Optional[str] = None      # GBNF text handed to the engine; None for text
    schema: Optional[Any] = None       # parsed JSON Schema for json_schema

    @property
    def constrained(self) -> bool:
        return self.name != 'text'

    def check(self, text: str, finish_reason: str, max_tokens: int) -> Optional[str]:
        """None if ``text`` is an acceptable final reply in this format, else why not."""
        if not self.constrained:
            return None
        if finish_reason == 'length':
            return (f'the model did not finish the {self.name} reply within max_tokens='
                    f'{max_tokens}; the output is incomplete and was not accepted')
        if self.name == 'grammar':
            return None
        try:
            value = json.loads(text)
        except ValueError as e:
            return f'reply is not valid JSON: {e}'
        if self.schema is not None and jsonschema is not None:
            try:
                jsonschema.validate(value, self.schema)
            except jsonschema.ValidationError as e:
                return f'reply does not match the JSON schema: {e.message}'
        return None


MAX_CONFIG_FILE_BYTES = 1 << 20  # a schema or grammar file; more is certainly a mistake


def _read(path: str, what: str) -> str:
    try:
        size = os.path.getsize(path)
        if size > MAX_CONFIG_FILE_BYTES:
            raise ValueError(f'{what} {path!r} is {size} bytes, more than the '
                             f'{MAX_CONFIG_FILE_BYTES} a schema or grammar file may have')
        with open(path, encoding='utf-8') as f:
            return f.read(MAX_CONFIG_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else f'not UTF-8 text ({e.reason})'
        raise ValueError(f'{what} {path!r} cannot be read: {reason}') from e


class FormatResolver:
    """
    Builds the node's default format at configure time and resolves per-request ones.

    JSON schemas become grammars through grammars.schema_to_gbnf (bounded: a hostile schema
    is refused before it is converted); converted formats are cached by schema text in an
    LRU bounded by bytes (a count bound let six big grammars keep 1.4 GB).
    """

    CACHE_BYTES = 8 << 20

    def __init__(self, default: str, json_schema_file: str, grammar_file: str):
        self._cache = ByteLRU(self.CACHE_BYTES)
        self.source = ''  # the file behind the default format (resolved path), if any
        if default == 'text':
            self.default = OutputFormat()
        elif default == 'json':
            self.default = self._json(None, 'json')
        elif default == 'json_schema':
            self.source = resolve_config_file(json_schema_file, 'json_schema_file')
            text = _read(self.source, 'json_schema_file')
            self.default = self._json(text, f'json_schema_file {self.source!r}')
        elif default == 'grammar':
            self.source = resolve_config_file(grammar_file, 'grammar_file')
            gbnf = _read(self.source, 'grammar_file')
            try:
                check_gbnf(gbnf)
            except ValueError as e:
                raise ValueError(f'grammar_file {self.source!r}: {e}') from e
            self.default = OutputFormat('grammar', grammar=gbnf)
        else:
            raise ValueError(f'response_format must be one of {list(FORMATS)} (got {default!r})')

    @property
    def description(self) -> str:
        """e.g. 'json_schema from /opt/.../robot_command.schema.json' (for the node's log)."""
        return self.default.name + (f' from {self.source}' if self.source else '')

    def _json(self, schema_text: Optional[str], where: str) -> OutputFormat:
        key = schema_text or ''
        fmt = self._cache.get(key)
        if fmt is not None:
            return fmt
        if schema_text:
            gbnf, schema = schema_to_gbnf(schema_text, where)
            fmt = OutputFormat('json_schema', gbnf, schema)
        else:
            fmt = OutputFormat('json', json_grammar(None))
        self._cache.put(key, fmt, len(fmt.grammar) + len(key))
        return fmt

    def resolve(self, response_format: str, json_schema: str) -> OutputFormat:
        """Return the format for one request; raise ValueError with a client-facing reason."""
        name = response_format.strip().lower()
        if not name:
            if json_schema.strip():
                name = 'json_schema'
            else:
                return self.default
        if name == 'text':
            return OutputFormat()
        if name == 'json':
            return self._json(None, 'json')
        if name == 'json_schema':
            if json_schema.strip():
                return self._json(json_schema, 'request json_schema')
            if self.default.name == 'json_schema':
                return self.default
            raise ValueError('response_format "json_schema" needs the json_schema field '
                             '(the node has no default schema)')
        if name == 'grammar':
            if self.default.name == 'grammar':
                return self.default
            raise ValueError('response_format "grammar" is only available when the node is '
                             'configured with grammar_file')
        raise ValueError(f'unknown response_format {response_format!r}: use one of '
                         f'{list(FORMATS)} or leave it empty')
