"""Create the PostgreSQL database DATABASE_URL names, when it does not exist yet.

`make run-prod` runs it before `migrate`; it connects to the server's `postgres` database.
"""

import os
import sys

import environ
import psycopg
from psycopg import sql


def main() -> int:
    url = os.environ.get("DATABASE_URL", "")
    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        print(f"createdb: DATABASE_URL is not PostgreSQL ({config['ENGINE']}); nothing to do")
        return 0
    name = config["NAME"]
    server = psycopg.conninfo.make_conninfo(
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        dbname="postgres",
    )
    with psycopg.connect(server, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if found:
            print(f"createdb: database {name} exists")
            return 0
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"createdb: database {name} created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
