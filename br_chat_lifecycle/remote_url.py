# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A remote server's URL: checking a ``base_url`` parameter and showing it without secrets.

Plain ``urllib.parse`` (no HTTP, no heavy imports): settings.py validates parameters with it,
the node shows the URL in diagnostics, openai_backend.py in its error texts.
"""
import re
from typing import Optional
import urllib.parse

_USERINFO = re.compile(r'(https?://)[^/@\s]*@')


def public_url(url: str) -> str:
    """``url`` without user, password, query and fragment (safe for logs and diagnostics)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ''
        port = parts.port
    except ValueError:
        return '<invalid URL>'
    if ':' in host:
        host = f'[{host}]'
    netloc = host + (f':{port}' if port else '')
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def strip_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` part of every http(s) URL in it removed."""
    return _USERINFO.sub(r'\1', text)


def url_error(url: str) -> Optional[str]:
    """Why ``url`` cannot be a server's API root, or None."""
    if any(c.isspace() for c in url):
        return 'must not contain spaces'
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as e:
        return f'not a valid URL ({e})'
    if parts.scheme not in ('http', 'https'):
        return f'must start with http:// or https:// (got scheme {parts.scheme!r})'
    if not parts.hostname:
        return 'has no host'
    return None
