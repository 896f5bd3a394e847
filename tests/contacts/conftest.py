"""Contact files the import tests write for themselves: good, bad and ugly."""

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, TestCase

HEADER = ["phone", "first_name", "last_name", "email", "loyalty_tier"]


def csv_text(rows: list[list[str]], header: list[str] = HEADER, delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_bytes(content.encode(encoding))
        else:
            path.write_bytes(content)
        return path

    return write


def uk(i: int) -> str:
    """A valid UK mobile, distinct per i."""
    return f"+4474000{i:05d}"


def post_and_commit(client: Client, url: str, data: dict[str, Any]) -> Any:
    """POST as a browser would, the request's on-commit work (an upload's check) done, and
    follow the redirect. The tests run in a transaction that never commits by itself."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url, data)
    while response.status_code == 302:
        response = client.get(response["Location"])
    return response
