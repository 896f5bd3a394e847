"""Bulk upsert over the API against `import_contacts`, on the same rows.

    python bench/api_contacts.py [--rows N] [--runs N] [--db sqlite,postgres]
                                 [--clients N] [--web-workers N]

bench/datasets.py's contact file of --rows rows (100,000; 2% invalid numbers, 1%
repeated) is imported with `manage.py import_contacts FILE --group Bench` into a fresh
database (its own worker processes, one per core), timed from start to exit. Then, into
another fresh database, the same rows go to `POST /api/v1/contacts/bulk`, 10,000 a
request, each row naming the group Bench, from --clients (3) threads at once to gunicorn
on a loopback port (as production runs it, DEBUG off, --web-workers sync workers: 2, one
per core), timed from the first request to the last answer. The two are taken in turn,
the order alternating run by run, so drift of the shared machine falls on both alike.
Checks that both end with the same contacts and memberships. Prints rows/s of each and
their ratio (target: API >= 0.5x the import); and, since the import's rows/s include
starting Django and its worker processes (the web server is up before the API's clock
starts), that start alone (a dry run of the file's first row) and the ratio without it.

For bench/run.py: `api_contacts_figures(kind, rows)` and `bench_api_contacts(db, rows,
figures)` have the shapes `per_database` takes. Steps run inside a database
(DATABASE_URL set): `setup` (a superuser, the group, a token: prints it) and `check`
(prints contacts= members=).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.web import request, web_server  # noqa: E402

if TYPE_CHECKING:
    from bench.run import Database, Figure

ROWS = 100_000
REQUEST_ROWS = 10_000
CLIENTS = 3
WEB_WORKERS = 2
GROUP = "Bench"
TARGET = 0.5


def api_contacts_figures(kind: str, rows: int) -> list[tuple[str, Figure, float | None]]:
    from bench.run import Figure

    return [
        (
            "import_rows_s",
            Figure(f"import_contacts, {rows:,} new rows", kind, "rows/s", "(baseline)", True),
            None,
        ),
        (
            "api_rows_s",
            Figure("the same rows, bulk upsert over HTTP", kind, "rows/s", "(measured)", True),
            None,
        ),
        (
            "api_ratio",
            Figure("bulk upsert / import_contacts", kind, "x", f">= {TARGET}", True),
            TARGET,
        ),
        (
            "import_startup_s",
            Figure("import_contacts' start (one-row dry run)", kind, "s", "(measured)", False),
            None,
        ),
        (
            "api_ratio_steady",
            Figure("bulk upsert / import_contacts less its start", kind, "x", "(measured)", True),
            None,
        ),
    ]


def bench_api_contacts(
    db: Database, rows: int, figures: dict[str, Figure], clients: int = CLIENTS
) -> None:
    """One run: the import and the API on fresh databases, in turn; their rows/s."""
    csv_path = contacts_file(rows)
    bodies = request_bodies(csv_path)
    first_api = len(figures["api_ratio"].samples) % 2 == 1
    seconds: dict[str, float] = {}
    checked: dict[str, dict[str, float]] = {}
    for step in ("api", "import") if first_api else ("import", "api"):
        db.fresh()
        seconds[step] = (
            post_bodies(db, bodies, clients) if step == "api" else import_file(db, csv_path)
        )
        checked[step] = run_step(db, [sys.executable, __file__, "check"])
        if step == "import":
            seconds["startup"] = import_file(db, first_row_file(csv_path), "--dry-run")
    if checked["api"] != checked["import"]:
        raise SystemExit(f"the API stored {checked['api']}, the import {checked['import']}")
    steady = (seconds["import"] - seconds["startup"]) / seconds["api"]
    figures["import_rows_s"].samples.append(rows / seconds["import"])
    figures["api_rows_s"].samples.append(rows / seconds["api"])
    figures["api_ratio"].samples.append(seconds["import"] / seconds["api"])
    figures["import_startup_s"].samples.append(seconds["startup"])
    figures["api_ratio_steady"].samples.append(steady)
    print(
        f"  [{db.kind}] import {rows / seconds['import']:,.0f} rows/s ({seconds['import']:.1f} s, "
        f"{seconds['startup']:.1f} s of it starting), API {rows / seconds['api']:,.0f} rows/s "
        f"({seconds['api']:.1f} s), ratio {seconds['import'] / seconds['api']:.2f} "
        f"({steady:.2f} without the import's start); stored {checked['api']}",
        file=sys.stderr,
    )


def contacts_file(rows: int) -> Path:
    from bench.datasets import write_contacts_csv
    from bench.run import DATA

    DATA.mkdir(exist_ok=True)
    path = DATA / f"contacts-{rows}.csv"
    if not path.exists():
        write_contacts_csv(path, rows)
    return path


def request_bodies(csv_path: Path) -> list[bytes]:
    """The file's rows as the API takes them, 10,000 a body, encoded before any timing."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = [
            {
                "phone": row["phone"],
                "first_name": row["first_name"],
                "last_name": row["last_name"],
                "email": row["email"],
                "attributes": {"loyalty_tier": row["loyalty_tier"], "city": row["city"]},
                "groups": [GROUP],
            }
            for row in csv.DictReader(handle)
        ]
    return [
        json.dumps({"contacts": rows[start : start + REQUEST_ROWS]}).encode()
        for start in range(0, len(rows), REQUEST_ROWS)
    ]


def first_row_file(csv_path: Path) -> Path:
    """The file's header and first row: what importing costs before any row (starting
    Django and the import's worker processes), timed as a dry run."""
    path = csv_path.with_name(f"first-row-of-{csv_path.name}")
    with csv_path.open(encoding="utf-8") as handle:
        path.write_text(handle.readline() + handle.readline(), encoding="utf-8")
    return path


def import_file(db: Database, csv_path: Path, *options: str) -> float:
    cmd = [sys.executable, "manage.py", "import_contacts", str(csv_path), "--group", GROUP]
    cmd += options
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=db.env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"import_contacts failed:\n{result.stderr}")
    return elapsed


def post_bodies(db: Database, bodies: list[bytes], clients: int) -> float:
    """Seconds from the first request to the last answer; every one must be a 200."""
    setup = subprocess.run(
        [sys.executable, __file__, "setup"], cwd=ROOT, env=db.env(), capture_output=True, text=True
    )
    if setup.returncode != 0:
        raise SystemExit(f"setup failed:\n{setup.stderr}")
    token = setup.stdout.split("token=", 1)[1].split()[0]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with web_server(db, WEB_WORKERS, "100000/min", timeout=300) as port:

        def post(body: bytes) -> None:
            status, answer = request(
                port, "POST", "/api/v1/contacts/bulk", body, headers, timeout=600
            )
            if status != 200:
                raise SystemExit(f"bulk upsert answered {status}: {answer[:300]!r}")

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(post, bodies))
        return time.perf_counter() - started


def run_step(db: Database, cmd: list[str]) -> dict[str, float]:
    from bench.run import run_step as run

    return run(db, cmd)


# Steps run inside a database.


def setup_step() -> None:
    """A superuser, the group the rows name, and a token: printed as token=..."""
    from django.contrib.auth.models import User

    from api.models import ApiToken, Scope
    from contacts.models import Group

    user = User.objects.create_superuser("bench-api", password=None)
    Group.objects.get_or_create(name=GROUP)
    _token, text = ApiToken.objects.issue(user, "bench", [Scope.CONTACTS_WRITE])
    print(f"token={text}")


def check_step() -> None:
    from contacts.models import Contact

    print(f"contacts={Contact.objects.count()}")
    print(f"members={Contact.groups.through.objects.filter(group__name=GROUP).count()}")


# Standalone.


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", nargs="?", choices=("setup", "check"))
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args()
    if args.step:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        if args.step == "setup":
            setup_step()
        else:
            check_step()
        return
    standalone(args)


def standalone(args: argparse.Namespace) -> None:
    import shutil

    from bench.run import Database

    table: list[tuple[str, Any]] = []
    for kind in args.db.split(","):
        if not Database.available(kind):
            print(f"skipping {kind}: not reachable", file=sys.stderr)
            continue
        db = Database(kind)
        rows = api_contacts_figures(kind, args.rows)
        figures = {key: figure for key, figure, _ in rows}
        try:
            for run in range(args.runs):
                print(f"{kind}: API contacts run {run + 1} of {args.runs}", file=sys.stderr)
                bench_api_contacts(db, args.rows, figures, args.clients)
        finally:
            shutil.rmtree(db.tmp, ignore_errors=True)
        table += [(kind, figure) for _, figure, _ in rows]
    print(
        f"\nbulk upsert over the API vs import_contacts: {args.rows:,} rows, median of {args.runs}"
    )
    print("| figure | database | median | runs | target |")
    print("| --- | --- | ---: | --- | --- |")
    for kind, figure in table:
        digits = 2 if figure.unit in ("x", "s") else 0
        runs = ", ".join(f"{sample:,.{digits}f}" for sample in figure.samples)
        median = f"{statistics.median(figure.samples):,.{digits}f} {figure.unit}"
        print(f"| {figure.name} | {kind} | {median} | {runs} | {figure.target} |")


if __name__ == "__main__":
    main()
