"""gunicorn on a loopback port as production runs it, for the API's benches, and plain
HTTP requests to it."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from bench.run import Database


@contextmanager
def web_server(db: Database, workers: int, api_rate: str, timeout: int = 60) -> Iterator[int]:
    """gunicorn as in production (DEBUG off), its logs nowhere, `workers` sync workers and
    each token paced at `api_rate` (high: a figure is a path's, not the pace's); its port."""
    from bench.run import free_port

    port = free_port()
    env = {
        **db.env(),
        "DEBUG": "False",
        "SECURE_SSL_REDIRECT": "False",  # plain HTTP on loopback, as `make run-prod`
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": "1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_MAX_REQUESTS": "0",  # no worker restart in the middle of a measure
        "GUNICORN_TIMEOUT": str(timeout),
        "GUNICORN_ACCESS_LOG": "0",
        "HERALD_API_RATE": api_rate,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/healthz", b"", {})[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def request(
    port: int,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float = 60,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()
