"""gunicorn on a loopback port as production runs it, for the benches that measure
requests, and plain HTTP requests to it (one connection a request: a sync worker closes
every connection after its answer)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from bench.run import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(env: Mapping[str, str], workers: int = 1, timeout: int = 60) -> Iterator[int]:
    """gunicorn as in production (DEBUG off, config/gunicorn.conf.py) in `env` (its
    database, any setting of the bench's), `workers` sync workers, its logs nowhere, on a
    free loopback port; that port, once it answers /healthz."""
    port = free_port()
    env = {
        **env,
        "DEBUG": "False",
        "SECURE_SSL_REDIRECT": "False",  # plain HTTP on loopback, as `make run-prod`
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": "1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_MAX_REQUESTS": "0",  # no worker restart in the middle of a measure
        "GUNICORN_TIMEOUT": str(timeout),
        "GUNICORN_ACCESS_LOG": "0",
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


@contextmanager
def web_server(db: Database, workers: int, api_rate: str, timeout: int = 60) -> Iterator[int]:
    """gunicorn in `db` with `workers` sync workers and each token paced at `api_rate`
    (high: a figure is a path's, not the pace's); its port."""
    with gunicorn({**db.env(), "HERALD_API_RATE": api_rate}, workers, timeout) as port:
        yield port


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
