"""Django's PostgreSQL backend, with a health check that costs no round trip when it
need not.

With CONN_HEALTH_CHECKS (settings) Django asks a kept connection `is_usable()` before the
first query of every request, and the stock backend answers by running `SELECT 1`: one
round trip in every request, a fifth of a transactional send's. A server that ends a
connection (a restart, `idle_session_timeout`, `pg_terminate_backend`) says so on the
socket: it sends its FATAL notice and closes. So an idle connection with nothing to read
is as good as `SELECT 1` would find it, and is taken at once; one with anything waiting
(that notice, the end of the stream, or anything else) gets the stock `SELECT 1`, which
decides. A server that vanished without a word is found by the first query, as it would
have been by `SELECT 1`.
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        pgconn = connection.pgconn
        if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != (
            pq.TransactionStatus.IDLE
        ):
            return super().is_usable()
        try:
            waiting, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return False
        if waiting:
            return bool(super().is_usable())
        return True
