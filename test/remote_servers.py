# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
OpenAI-compatible HTTP servers on localhost for the remote-backend tests and benchmark.

  LlamaServer     llama-cpp-python's own server (``python -m llama_cpp.server``) with a real
                  GGUF model: the real thing, started, killed and restarted as a process.
  RecordingProxy  a transparent HTTP proxy in front of a real server that records every
                  request body, so a test can see exactly what the node sent (messages, options).
  FakeServer      a small real HTTP server (http.server) for the faults the real server cannot
                  produce: a stream that stalls, a malformed stream, HTTP 503 with a body, a
                  server that ignores stop sequences or the JSON schema.
Every wait is bounded; every server stops by itself when the test process ends (daemon threads,
child processes killed in ``stop``).
"""
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class LlamaServer:
    """
    ``python -m llama_cpp.server`` serving ``model_path`` as ``alias`` on 127.0.0.1.

    ``--interrupt_requests False``: by default that server ends a running stream as soon as
    another request arrives (it generates one request at a time); the node may have several in
    flight, so it must queue them instead.
    """

    def __init__(self, model_path: str, alias: str = 'smol', api_key: str = '',
                 port: Optional[int] = None, n_ctx: int = 2048, n_threads: int = 1,
                 start: bool = True):
        self.model_path, self.alias, self.api_key = model_path, alias, api_key
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}/v1'
        self.log_path = os.path.join(tempfile.mkdtemp(prefix='llama_server_'), 'server.log')
        self.proc: Optional[subprocess.Popen] = None
        if start:
            self.start()

    def start(self, timeout: float = 120.0) -> None:
        args = [sys.executable, '-m', 'llama_cpp.server', '--model', self.model_path,
                '--model_alias', self.alias, '--host', '127.0.0.1', '--port', str(self.port),
                '--n_ctx', str(self.n_ctx), '--n_threads', str(self.n_threads),
                '--interrupt_requests', 'False', '--verbose', 'False']
        if self.api_key:
            args += ['--api_key', self.api_key]
        with open(self.log_path, 'a') as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, PYTHONUNBUFFERED='1'))
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise AssertionError(f'llama_cpp.server exited ({self.proc.returncode}):\n'
                                     f'{self.log_text()[-3000:]}')
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f'llama_cpp.server not ready after {timeout:.0f} s:\n'
                                     f'{self.log_text()[-3000:]}')
            time.sleep(0.1)

    def ready(self) -> bool:
        headers = {'Authorization': f'Bearer {self.api_key}'} if self.api_key else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    self.url + '/models', headers=headers), timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_text(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def disconnects(self) -> int:
        """How often the server saw a client close a stream (it then stops generating)."""
        return self.log_text().count('Disconnected from client')

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever, its sockets are closed by the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """A ThreadingHTTPServer on a free localhost port, serving in a daemon thread."""

    def __init__(self, handler):
        self.stopping = threading.Event()
        self.requests: List[dict] = []   # {'method', 'path', 'body'} in arrival order
        self.httpd = _Server(('127.0.0.1', 0), handler)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.url = f'http://127.0.0.1:{self.port}/v1'
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def chat_bodies(self) -> List[dict]:
        return [r['body'] for r in self.requests
                if r['path'].endswith('/chat/completions') and r['body']]

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _read_body(self):
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        body = json.loads(raw) if raw else None
        self.server.owner.requests.append({'method': self.command, 'path': self.path,
                                           'body': body})
        return raw, body


class _ProxyHandler(_Handler):

    def _forward(self):
        raw, _ = self._read_body()
        owner = self.server.owner
        upstream = http.client.HTTPConnection('127.0.0.1', owner.upstream_port, timeout=120)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ('host', 'connection', 'keep-alive')}
        try:
            upstream.request(self.command, self.path, body=raw or None, headers=headers)
            resp = upstream.getresponse()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ('transfer-encoding', 'connection', 'content-length'):
                    self.send_header(k, v)
            self.send_header('Connection', 'close')   # the body ends when we close
            self.end_headers()
            while True:
                data = resp.read1(65536)
                if not data:
                    break
                self.wfile.write(data)
                self.wfile.flush()
        except OSError:
            pass  # the client went away: closing the upstream connection tells the server
        finally:
            upstream.close()
            self.close_connection = True

    do_GET = do_POST = _forward


class RecordingProxy(_Base):
    """
    Forward every request to the server on ``upstream_port``, recording its body.

    Requests go through unchanged and replies stream back as they come; ``requests`` holds
    what was sent.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        super().__init__(_ProxyHandler)


def _chunk(content=None, finish=None, model='fake'):
    delta = {'content': content} if content is not None else {}
    return {'id': 'chatcmpl-fake', 'object': 'chat.completion.chunk', 'created': 0,
            'model': model, 'choices': [{'index': 0, 'delta': delta,
                                         'finish_reason': finish}]}


class _FakeHandler(_Handler):

    def do_GET(self):
        self._read_body()
        if self.path.rstrip('/').endswith('/models'):
            self._json(200, {'object': 'list', 'data': [
                {'id': FakeServer.MODEL, 'object': 'model', 'owned_by': 'test'}]})
        else:
            self._json(404, {'error': {'message': f'no route {self.path}'}})

    def do_POST(self):
        _, body = self._read_body()
        if not self.path.endswith('/chat/completions'):
            self._json(404, {'error': {'message': f'no route {self.path}'}})
            return
        prompt = body['messages'][-1]['content']
        for word, behaviour in FakeServer.BEHAVIOURS.items():
            if word in prompt:
                getattr(self, behaviour)()
                return
        self._stream(['OK'], 'stop')

    def _json(self, status, data):
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _start_stream(self):
        self.send_response(200)
        self.send_header('Content-Type', 'text/event-stream')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True

    def _send(self, line: str):
        self.wfile.write(line.encode())
        self.wfile.flush()

    def _stream(self, pieces, finish):
        self._start_stream()
        for p in pieces:
            self._send(f'data: {json.dumps(_chunk(p))}\n\n')
        self._send(f'data: {json.dumps(_chunk(finish=finish))}\n\ndata: [DONE]\n\n')

    # behaviours (chosen by a word in the last user message)
    def stall(self):
        """One piece of text, then nothing (until the client gives up, or 60 s)."""
        self._start_stream()
        self._send(f'data: {json.dumps(_chunk("Thinking"))}\n\n')
        self.server.owner.stopping.wait(60)

    def malformed(self):
        self._start_stream()
        self._send(f'data: {json.dumps(_chunk("Part one"))}\n\n')
        self._send('data: {"choices": [{"delta": {"content": "x"}, \n\n')  # broken JSON
        self._send('data: [DONE]\n\n')

    def overloaded(self):
        self._json(503, {'error': {'message': 'model is overloaded, try again later',
                                   'type': 'server_error'}})

    def ignores_stop(self):
        """Streams past a stop sequence (a server that does not apply ``stop``)."""
        self._stream(['Hello wor', 'ld. ST', 'OP and more text'], 'stop')

    def ignores_schema(self):
        self._stream(['{"name": ', '5}'], 'stop')


class FakeServer(_Base):
    """
    A real HTTP server speaking just enough of the API to produce faults on demand.

    A word in the last user message picks the behaviour (``BEHAVIOURS``).
    """

    MODEL = 'fake'
    BEHAVIOURS = {'STALL': 'stall', 'MALFORMED': 'malformed', 'OVERLOADED': 'overloaded',
                  'IGNORESTOP': 'ignores_stop', 'IGNORESCHEMA': 'ignores_schema'}

    def __init__(self):
        super().__init__(_FakeHandler)
