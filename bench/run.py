"""`make bench`: Herald's speed figures, measured on this machine, printed as a table.

    python bench/run.py [--rows N] [--runs N] [--db sqlite,postgres]
                        [--only contacts|providers|campaigns|dashboard|segments|inbound|links|api]
                        [--recipients N]

contacts:  the CLI import of --rows contacts, again, and the contact list's searches; both
           imports against one process that only reads the same file and validates its
           numbers with libphonenumber (bench/phone_baseline.py), timed before and after
           them in the same run (their ratio), and the import's peak memory.
providers: the BulkSMSRates send paths against the fake gateway (tests/fakegateway.py)
           run in a process of its own on loopback: bulk handover by one process, the
           same recipients through the engine (claim, send, record) in one process, and
           their ratio, both measured in the same run; single sends at a configured
           100 req/s, single sends through the engine with and without issue 14's faults
           (their ratio), and the per-message cost of our HTTP layer.
campaigns: a --recipients campaign (1,000,000): building its messages, then sending
           them through the BulkSMSRates bulk path with two workers at once, with the
           workers' peak memory (VmHWM).
dashboard: each dashboard page's median server time with --recipients contacts and messages.
segments:  with --recipients contacts (attributes, five countries, groups): counting a
           three-rule segment (attribute + country + group), and building a campaign to
           everyone from a segment against the same audience from a group (their ratio,
           the builds alternating in each run).
inbound:   signed inbound webhooks (whatsapp.message replies, some STOP, one in ten a
           copy) posted over loopback to one gunicorn sync worker, with dedupe, against
           /healthz on the same worker; the worker applying what that door recorded; the
           same posted to a worker applying them in the request (the door before); and
           keyword matching alone, in messages/s.
links:     the --recipients campaign built with a short link per recipient and the
           same text built with its URL as written (each on a fresh database, the order
           alternating run by run), their ratio; then GET /r/<code> against /healthz on
           one gunicorn sync worker, alternating in three rounds, every click counted.
api:       --api-rows contacts (100,000) bulk-upserted over HTTP against import_contacts
           on the same rows (bench/api_contacts.py); transactional sends accepted over
           HTTP by gunicorn, against GET /api/v1/token on the same server
           (bench/api_send.py); outgoing webhooks posted to a loopback receiver that
           checks every signature, and what the outbox costs a status move
           (bench/webhooks.py).

Each figure is the median of --runs runs, each on a fresh database. PostgreSQL is
used when it answers at BENCH_POSTGRES_URL (default: the local server, database
herald_bench, dropped and created for every run). Inputs are generated, never
downloaded, and cached in .bench-data/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.datasets import write_contacts_csv  # noqa: E402
from bench.web import free_port  # noqa: E402

DATA = ROOT / ".bench-data"
PYTHON = sys.executable
BENCH_SECRET_KEY = secrets.token_urlsafe(50)
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/herald_bench"
)


@dataclass
class Figure:
    name: str
    database: str
    unit: str
    target: str
    higher_is_better: bool
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def verdict(self, limit: float) -> str:
        ok = self.median >= limit if self.higher_is_better else self.median <= limit
        return "meets" if ok else "MISSES"


class Database:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tmp = Path(tempfile.mkdtemp(prefix="herald-bench-"))

    @property
    def url(self) -> str:
        return f"sqlite:///{self.tmp / 'bench.sqlite3'}" if self.kind == "sqlite" else POSTGRES_URL

    def fresh(self) -> None:
        if self.kind == "sqlite":
            for path in self.tmp.glob("bench.sqlite3*"):
                path.unlink()
        else:
            import psycopg

            name = POSTGRES_URL.rsplit("/", 1)[1]
            admin_url = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        self.manage("migrate", "--noinput", "-v0")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # Production settings (DEBUG off) refuse to start without a real key.
            "SECRET_KEY": os.environ.get("SECRET_KEY") or BENCH_SECRET_KEY,
        }

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    @staticmethod
    def available(kind: str) -> bool:
        if kind == "sqlite":
            return True
        try:
            import psycopg

            admin_url = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
            psycopg.connect(admin_url, connect_timeout=3).close()
        except Exception:
            return False
        return True


@dataclass
class Run:
    seconds: float
    main_peak_mb: float  # the importing process's own peak RSS (VmHWM)
    tree_peak_mb: float  # all its processes together, shared pages counted once (PSS)
    output: str


def timed_with_memory(cmd: list[str], env: dict[str, str]) -> Run:
    """Run a command, sampling its memory every 50 ms."""
    start = time.perf_counter()
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    main_peak, tree_peak = [0], [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            main_peak[0] = max(main_peak[0], status_kb(process.pid, "VmHWM"))
            tree = [process.pid, *descendants(process.pid)]
            tree_peak[0] = max(tree_peak[0], sum(pss_kb(pid) for pid in tree))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return Run(elapsed, main_peak[0] / 1024, tree_peak[0] / 1024, out)


def status_kb(pid: int, field_name: str) -> int:
    return _proc_field(f"/proc/{pid}/status", field_name)


def pss_kb(pid: int) -> int:
    return _proc_field(f"/proc/{pid}/smaps_rollup", "Pss")


def _proc_field(path: str, field_name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *descendants(child)]
    return found


def bench_import(db: Database, csv_path: Path, rows: int, figures: dict[str, Figure]) -> None:
    db.fresh()
    cmd = [PYTHON, "manage.py", "import_contacts", str(csv_path), "--group", "Bench"]
    before = baseline_seconds(csv_path)
    runs = {key: timed_with_memory(cmd, db.env()) for key in ("import", "reimport")}
    baseline = (before + baseline_seconds(csv_path)) / 2  # the machine's speed meanwhile
    figures["baseline"].samples.append(rows / baseline)
    print(
        f"  [{db.kind}] baseline: {rows / baseline:,.0f} rows/s, {baseline:.1f} s", file=sys.stderr
    )
    for key, run in runs.items():
        figures[key].samples.append(rows / run.seconds)
        figures[f"{key}_ratio"].samples.append(baseline / run.seconds)
        print(
            f"  [{db.kind}] {key}: {rows / run.seconds:,.0f} rows/s, {run.seconds:.1f} s "
            f"({baseline / run.seconds:.2f}x the baseline), peak {run.main_peak_mb:,.0f} MB "
            f"(with its workers {run.tree_peak_mb:,.0f} MB) -> {run.output.strip()}",
            file=sys.stderr,
        )
    figures["memory"].samples.append(max(run.main_peak_mb for run in runs.values()))
    figures["memory_all"].samples.append(max(run.tree_peak_mb for run in runs.values()))
    search = [PYTHON, "-m", "bench.changelist", "--repeat", "15"]
    result = subprocess.run(search, cwd=ROOT, env=db.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    for line in result.stdout.splitlines():
        key, value = line.split("=")
        figures[key].samples.append(float(value))
    print(f"  [{db.kind}] changelist: {result.stdout.strip()}", file=sys.stderr)


def baseline_seconds(csv_path: Path) -> float:
    """The yardstick: the whole process that reads the file and validates each number."""
    region = os.environ.get("HERALD_DEFAULT_REGION", "GB")  # the import's default too
    cmd = [PYTHON, "bench/phone_baseline.py", str(csv_path), "--region", region]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


@contextlib.contextmanager
def fake_gateway() -> Iterator[str]:
    """tests/fakegateway.py in a process of its own on a free loopback port: its address."""
    port = free_port()
    fake = subprocess.Popen(
        [PYTHON, "tests/fakegateway.py", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def bench_providers(db: Database, figures: dict[str, Figure]) -> None:
    db.fresh()
    with fake_gateway() as gateway:
        cmd = [PYTHON, "bench/providers.py", "--gateway", gateway]
        result = subprocess.run(cmd, cwd=ROOT, env=db.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    values = dict(line.split("=") for line in result.stdout.split())
    for key, value in values.items():
        figures[key].samples.append(float(value))
    overhead = float(values["layer_ms"]) - float(values["raw_ms"])
    figures["overhead_ms"].samples.append(overhead)
    print(f"  [{db.kind}] providers: {' '.join(result.stdout.split())}", file=sys.stderr)


def bench_campaign(db: Database, recipients: int, figures: dict[str, Figure]) -> None:
    db.fresh()
    with fake_gateway() as gateway:
        import requests

        requests.post(f"{gateway}/_fake/config", json={"bulk_balance": 10**12}, timeout=10)
        step = [PYTHON, "bench/campaign.py"]
        run_step(db, [*step, "setup", "--contacts", str(recipients), "--gateway", gateway])
        previewed = run_step(db, [*step, "preview"])
        figures["preview_s"].samples.append(previewed["seconds"])
        built = run_step(db, [*step, "materialise"])
        figures["materialise_s"].samples.append(built["seconds"])
        started = time.perf_counter()
        workers = [
            subprocess.Popen(
                [*step, "work"], cwd=ROOT, env=db.env(), stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [worker.communicate()[0] for worker in workers]
        wall = time.perf_counter() - started
    peaks = [parse_values(out)["peak_mb"] for out in outputs]
    figures["dispatch_rate"].samples.append(recipients / wall)
    figures["dispatch_s"].samples.append(wall)
    figures["worker_mb"].samples.append(max(peaks))
    print(
        f"  [{db.kind}] campaign: materialise {built['seconds']:.1f} s, "
        f"dispatch {wall:.1f} s ({recipients / wall:,.0f}/s), worker peaks {peaks} MB",
        file=sys.stderr,
    )


def run_step(db: Database, cmd: list[str]) -> dict[str, float]:
    result = subprocess.run(cmd, cwd=ROOT, env=db.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return parse_values(result.stdout)


def parse_values(output: str) -> dict[str, float]:
    pairs = (line.split("=", 1) for line in output.split() if "=" in line)
    return {key: float(value) for key, value in pairs}


def campaign_figures(kind: str, recipients: int) -> list[tuple[str, Figure, float | None]]:
    return [
        (
            "materialise_s",
            Figure(f"build {recipients:,} messages", kind, "s", "<= 20", False),
            20,
        ),
        (
            "preview_s",
            Figure(
                f"preview {recipients:,} (audience rule, segments, cost)", kind, "s", "-", False
            ),
            None,
        ),
        (
            "dispatch_rate",
            Figure("send, bulk path, two workers", kind, "messages/s", ">= 5,000", True),
            5_000,
        ),
        (
            "dispatch_s",
            Figure(f"send all {recipients:,}", kind, "s", "< 240", False),
            240,
        ),
        (
            "worker_mb",
            Figure("worker peak memory (each, VmHWM)", kind, "MB", "<= 64", False),
            64,
        ),
    ]


def bench_segments(db: Database, recipients: int, figures: dict[str, Figure]) -> None:
    db.fresh()
    step = [PYTHON, "bench/segments.py"]
    run_step(db, [*step, "setup", "--contacts", str(recipients)])
    counted = run_step(db, [*step, "count", "--repeat", "7"])
    figures["count_s"].samples.append(counted["seconds"])
    # Group first in one run, segment first in the next: the machine's speed drifts.
    order = ("group", "segment") if len(figures["count_s"].samples) % 2 else ("segment", "group")
    built = {by: run_step(db, [*step, f"build-{by}"]) for by in order}
    for by in order:
        figures[f"build_{by}_s"].samples.append(built[by]["seconds"])
    ratio = built["segment"]["seconds"] / built["group"]["seconds"]
    figures["build_ratio"].samples.append(ratio)
    print(
        f"  [{db.kind}] segments: count {counted['seconds']:.3f} s "
        f"({counted['matched']:,.0f} matched), build by group {built['group']['seconds']:.1f} s, "
        f"by segment {built['segment']['seconds']:.1f} s, ratio {ratio:.2f}",
        file=sys.stderr,
    )


def segment_figures(kind: str, recipients: int) -> list[tuple[str, Figure, float | None]]:
    return [
        (
            "count_s",
            Figure(
                f"count a three-rule segment, {recipients:,} contacts", kind, "s", "<= 1", False
            ),
            1,
        ),
        (
            "build_group_s",
            Figure(f"build {recipients:,} messages from a group", kind, "s", "-", False),
            None,
        ),
        (
            "build_segment_s",
            Figure(f"build {recipients:,} messages from a segment", kind, "s", "-", False),
            None,
        ),
        (
            "build_ratio",
            Figure("build from a segment / from a group", kind, "x", "<= 1.25", False),
            1.25,
        ),
    ]


def bench_dashboard(db: Database, recipients: int, figures: dict[str, Figure]) -> None:
    db.fresh()
    cmd = [PYTHON, "bench/dashboard.py", "--contacts", str(recipients), "--repeat", "10"]
    values = run_step(db, cmd)
    for key, figure in figures.items():
        figure.samples.append(values[key])
    print(f"  [{db.kind}] dashboard: {values}", file=sys.stderr)


DASHBOARD_PAGES = (
    "home",
    "campaign",
    "campaign_progress",
    "approvals",
    "contacts",
    "reports",
    "campaign_new",
)


#: The campaign list (all, one status, a search) among 1,000 other campaigns: <= 150 ms.
CAMPAIGN_LIST_PAGES = ("campaigns", "campaigns_sending", "campaigns_search")
#: Contact search (a number typed nationally, a name) and a contact's page with its
#: message of the million-message campaign, among the million contacts: <= 150 ms.
CONTACT_PAGES = ("contact_search", "contact_search_name", "contact")


def dashboard_figures(kind: str, recipients: int) -> list[tuple[str, Figure, float | None]]:
    """Each page with the cache (the older targets) and without it: every page <= 150 ms
    with the million-message campaign and no cache (issue 19)."""
    targets: list[tuple[str, float]] = [(page, 300) for page in DASHBOARD_PAGES]
    targets += [(page, 150) for page in (*CAMPAIGN_LIST_PAGES, *CONTACT_PAGES)]
    rows: list[tuple[str, Figure, float | None]] = []
    for page, limit in targets:
        name = f"dashboard {page}, {recipients:,} messages"
        rows.append((f"{page}_ms", Figure(name, kind, "ms", f"<= {limit:g}", False), limit))
        rows.append(
            (f"{page}_cold_ms", Figure(f"  {page}, no cache", kind, "ms", "<= 150", False), 150)
        )
    return rows


def bench_inbound(db: Database, recipients: int, figures: dict[str, Figure]) -> None:
    db.fresh()
    values = run_step(db, [PYTHON, "bench/inbound.py"])
    for key, figure in figures.items():
        figure.samples.append(values[key])
    print(f"  [{db.kind}] inbound: {values}", file=sys.stderr)


def inbound_figures(kind: str, recipients: int) -> list[tuple[str, Figure, float | None]]:
    """(key, figure, limit): replies per second into one web worker; None: no target."""
    return [
        (
            "inbound_per_s",
            Figure(
                "signed inbound webhooks, one web worker, with dedupe",
                kind,
                "events/s",
                ">= 300",
                True,
            ),
            300,
        ),
        (
            "applied_per_s",
            Figure("  the same events applied by one worker process", kind, "events/s", "-", True),
            None,
        ),
        (
            "inline_per_s",
            Figure(
                "  the same, applied within the request (HERALD_WEBHOOK_APPLY=inline)",
                kind,
                "events/s",
                "(before)",
                True,
            ),
            None,
        ),
        (
            "healthz_per_s",
            Figure("GET /healthz, the same worker", kind, "req/s", "(baseline)", True),
            None,
        ),
        (
            "inbound_share",
            Figure("inbound webhooks / healthz", kind, "x", "(no target)", True),
            None,
        ),
        (
            # A hundred times the webhooks' target: matching is never what holds them up.
            "keywords_per_s",
            Figure("keyword matching alone, one process", kind, "msg/s", ">= 30,000", True),
            30_000,
        ),
    ]


def bench_links(db: Database, recipients: int, figures: dict[str, Figure]) -> None:
    """The same 1M-recipient campaign built with short links and without, each on a fresh
    database (which goes first alternates run by run), then the redirect against /healthz
    on the database the links were built in."""
    step = [PYTHON, "bench/links.py", "build", "--contacts", str(recipients)]
    order = [False, True] if len(figures["links_build_s"].samples) % 2 == 0 else [True, False]
    seconds = {}
    for links in order:
        db.fresh()
        built = run_step(db, [*step, "--links"] if links else step)
        seconds[links] = built["seconds"]
        if links and built["links"] != built["queued"]:
            raise SystemExit(f"{built['queued']:.0f} queued but {built['links']:.0f} links")
        if links:
            redirected = run_step(db, [PYTHON, "bench/links.py", "redirect"])
    figures["plain_build_s"].samples.append(seconds[False])
    figures["links_build_s"].samples.append(seconds[True])
    figures["links_build_ratio"].samples.append(seconds[True] / seconds[False])
    for key in ("redirect_per_s", "healthz_per_s", "redirect_share"):
        figures[key].samples.append(redirected[key])
    print(
        f"  [{db.kind}] links: build {seconds[False]:.1f} s plain, {seconds[True]:.1f} s with "
        f"links; redirect {redirected['redirect_per_s']:.0f}/s, healthz "
        f"{redirected['healthz_per_s']:.0f}/s",
        file=sys.stderr,
    )


def links_figures(kind: str, recipients: int) -> list[tuple[str, Figure, float | None]]:
    return [
        (
            "plain_build_s",
            Figure(f"build {recipients:,} messages, a URL left as written", kind, "s", "-", False),
            None,
        ),
        (
            "links_build_s",
            Figure("  the same with a short link each", kind, "s", "-", False),
            None,
        ),
        (
            "links_build_ratio",
            Figure("  with links / without", kind, "x", "<= 1.2", False),
            1.2,
        ),
        (
            "redirect_per_s",
            Figure("GET /r/<code>, one web worker, counting clicks", kind, "req/s", "-", True),
            None,
        ),
        (
            "healthz_per_s",
            Figure("GET /healthz, the same worker", kind, "req/s", "(baseline)", True),
            None,
        ),
        (
            "redirect_share",
            Figure("  redirect / healthz", kind, "x", ">= 0.8", True),
            0.8,
        ),
    ]


def provider_figures(kind: str) -> list[tuple[str, Figure, float | None]]:
    """(key, figure, limit) for the provider benchmark; None: no target."""
    return [
        (
            "bulk_backend",
            Figure(
                "BulkSMSRates bulk, handed over by one process (backend)",
                kind,
                "recipients/s",
                ">= 20,000",
                True,
            ),
            20_000,
        ),
        (
            "bulk_engine",
            Figure(
                "  the same recipients through the engine: claim, send, record (one process)",
                kind,
                "recipients/s",
                "(measured)",
                True,
            ),
            None,
        ),
        (
            "bulk_ratio",
            Figure("engine / handover, same run", kind, "x", ">= 0.5", True),
            0.5,
        ),
        (
            "bulk_workers",
            Figure(
                "  the same through two worker processes on one campaign",
                kind,
                "recipients/s",
                "(measured)",
                True,
            ),
            None,
        ),
        (
            "bulk_workers_ratio",
            Figure("two workers / handover, same run", kind, "x", ">= 0.5", True),
            0.5,
        ),
        (
            "bulk_worker_start_mb",
            Figure("  a worker before it claims (VmRSS)", kind, "MB", "(measured)", False),
            None,
        ),
        (
            "bulk_worker_mb",
            Figure("bulk worker peak memory (each, VmHWM)", kind, "MB", "<= 64", False),
            64,
        ),
        (
            "single_rate",
            Figure("BulkSMSRates single sends, account at 100 req/s", kind, "req/s", ">= 95", True),
            95,
        ),
        ("single_429", Figure("429 answers during those single sends", kind, "", "0", False), 0),
        (
            "single_clean",
            Figure("single sends through the engine, no faults", kind, "msg/s", "(baseline)", True),
            None,
        ),
        (
            "single_faulty",
            Figure("the same with 5% 5xx, 2% 429, 1% dropped", kind, "msg/s", "(measured)", True),
            None,
        ),
        (
            "single_fault_ratio",
            Figure("single sends under faults / without", kind, "x", ">= 0.8", True),
            0.8,
        ),
        (
            "raw_ms",
            Figure("one single send, plain requests.Session", kind, "ms", "(baseline)", False),
            None,
        ),
        (
            "layer_ms",
            Figure(
                "one single send, our backend + HTTP layer + rate limiter",
                kind,
                "ms",
                "(no target)",
                False,
            ),
            None,
        ),
        (
            "overhead_ms",
            Figure("our per-message overhead (difference)", kind, "ms", "(measured)", False),
            None,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument(
        "--only",
        choices=(
            "contacts",
            "providers",
            "campaigns",
            "dashboard",
            "segments",
            "inbound",
            "links",
            "api",
        ),
    )
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument(
        "--api-rows", type=int, default=100_000, help="rows of the API's bulk-upsert bench"
    )
    args = parser.parse_args()

    table: list[tuple[Figure, float | None]] = []
    if args.only in (None, "contacts"):
        table += bench_contacts(args)
    if args.only in (None, "campaigns"):
        table += per_database(args, "campaign", campaign_figures, bench_campaign)
    if args.only in (None, "dashboard"):
        table += per_database(args, "dashboard", dashboard_figures, bench_dashboard)
    if args.only in (None, "segments"):
        table += per_database(args, "segments", segment_figures, bench_segments)
    if args.only in (None, "inbound"):
        table += per_database(args, "inbound", inbound_figures, bench_inbound)
    if args.only in (None, "links"):
        table += per_database(args, "links", links_figures, bench_links)
    if args.only in (None, "api"):
        table += bench_api(args)
    if args.only in (None, "providers"):
        for kind in args.db.split(","):
            if not Database.available(kind):
                continue
            db = Database(kind)
            rows = provider_figures(kind)
            figures = {key: figure for key, figure, _ in rows}
            try:
                for run in range(args.runs):
                    print(f"{kind}: providers run {run + 1} of {args.runs}", file=sys.stderr)
                    bench_providers(db, figures)
            finally:
                shutil.rmtree(db.tmp, ignore_errors=True)
            table += [(figure, limit) for _, figure, limit in rows]
    print_table(table, args)


Figures = Callable[[str, int], list[tuple[str, Figure, float | None]]]
Bench = Callable[[Database, int, dict[str, Figure]], None]


def per_database(
    args: argparse.Namespace, label: str, make_figures: Figures, bench: Bench
) -> list[tuple[Figure, float | None]]:
    """Run one section --runs times on each database that answers; its table rows."""
    table: list[tuple[Figure, float | None]] = []
    for kind in args.db.split(","):
        if not Database.available(kind):
            continue
        db = Database(kind)
        rows = make_figures(kind, args.recipients)
        figures = {key: figure for key, figure, _ in rows}
        try:
            for run in range(args.runs):
                print(f"{kind}: {label} run {run + 1} of {args.runs}", file=sys.stderr)
                bench(db, args.recipients, figures)
        finally:
            shutil.rmtree(db.tmp, ignore_errors=True)
        table += [(figure, limit) for _, figure, limit in rows]
    return table


def bench_api(args: argparse.Namespace) -> list[tuple[Figure, float | None]]:
    """Issue 21's figures: bulk upsert over the API against import_contacts on the same
    rows, transactional sends accepted over HTTP, outgoing webhooks delivered."""
    from bench.api_contacts import api_contacts_figures, bench_api_contacts
    from bench.api_send import api_send_figures, bench_api_send

    rows = argparse.Namespace(**{**vars(args), "recipients": args.api_rows})
    table = per_database(rows, "API bulk upsert", api_contacts_figures, bench_api_contacts)
    table += per_database(args, "API sends", api_send_figures, bench_api_send)
    return table + per_database(args, "outgoing webhooks", webhook_figures, bench_webhooks)


def webhook_figures(kind: str, recipients: int) -> list[tuple[str, Figure, float | None]]:
    from bench.webhooks import FIGURES

    return [
        (key, Figure(name, kind, unit, target, higher), limit)
        for key, name, unit, target, higher, limit in FIGURES
    ]


def bench_webhooks(db: Database, recipients: int, figures: dict[str, Figure]) -> None:
    """One run on a fresh database: the outbox's deliveries posted, and what it costs a move."""
    from bench.webhooks import command

    db.fresh()
    values = run_step(db, command(PYTHON))
    for key, figure in figures.items():
        figure.samples.append(values[key])
    print(
        f"  [{db.kind}] webhooks: {values['deliveries_per_s']:.0f} deliveries/s, a move "
        f"{values['move_nobody_ms']:.0f} ms nobody subscribed, "
        f"{values['move_subscribed_ms']:.0f} ms subscribed",
        file=sys.stderr,
    )


def bench_contacts(args: argparse.Namespace) -> list[tuple[Figure, float | None]]:
    DATA.mkdir(exist_ok=True)
    csv_path = DATA / f"contacts-{args.rows}.csv"
    if not csv_path.exists():
        print(f"generating {csv_path.name} ...", file=sys.stderr)
        write_contacts_csv(csv_path, args.rows)
    rows_in_file = args.rows  # every data row, good or bad, is work the importer does

    table: list[tuple[Figure, float | None]] = []
    for kind in args.db.split(","):
        if not Database.available(kind):
            print(f"skipping {kind}: not reachable at {POSTGRES_URL}", file=sys.stderr)
            continue
        db = Database(kind)
        figures = {
            "import": Figure("contact import, new (CLI)", kind, "rows/s", ">= 20,000", True),
            "reimport": Figure(
                "contact import, same file again", kind, "rows/s", ">= 20,000", True
            ),
            "baseline": Figure(
                "one process reading the file and validating its numbers (baseline)",
                kind,
                "rows/s",
                "(baseline)",
                True,
            ),
            "import_ratio": Figure("import, new / baseline", kind, "x", ">= 1.0", True),
            "reimport_ratio": Figure(
                "import, same file again / baseline", kind, "x", ">= 1.5", True
            ),
            "memory_all": Figure(
                "import peak memory, importing process and its workers (PSS)",
                kind,
                "MB",
                "<= 300",
                False,
            ),
            "memory": Figure(
                "import peak memory, importing process alone (VmHWM)",
                kind,
                "MB",
                "(no target)",
                False,
            ),
            "search_phone_ms": Figure("changelist, search by phone", kind, "ms", "<= 250", False),
            "first_page_ms": Figure("changelist, first page", kind, "ms", "(no target)", False),
            "group_filter_ms": Figure(
                "changelist, filtered by group", kind, "ms", "(no target)", False
            ),
        }
        try:
            for run in range(args.runs):
                print(f"{kind}: run {run + 1} of {args.runs}", file=sys.stderr)
                bench_import(db, csv_path, rows_in_file, figures)
        finally:
            shutil.rmtree(db.tmp, ignore_errors=True)
        limits = {
            "import": 20_000,
            "reimport": 20_000,
            "import_ratio": 1.0,
            "reimport_ratio": 1.5,
            "memory_all": 300,
            "search_phone_ms": 250,
        }
        table += [(f, limits.get(key)) for key, f in figures.items()]
    return table


def print_table(table: list[tuple[Figure, float | None]], args: argparse.Namespace) -> None:
    cpu = Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t")
    rows = f"{args.rows:,} contact rows, " if args.only in (None, "contacts") else ""
    print(f"\nHerald benchmarks: {rows}median of {args.runs} runs,")
    print(f"{os.cpu_count()} cores ({cpu})\n")
    print("| figure | database | median | target | |")
    print("| --- | --- | ---: | --- | --- |")
    for figure, limit in table:
        digits = 2 if figure.unit in ("ms", "x") and figure.median < 100 else 0
        digits = (2 if figure.median < 10 else 1) if figure.unit == "s" else digits
        value = f"{figure.median:,.{digits}f} {figure.unit}".strip()
        verdict = figure.verdict(limit) if limit is not None else ""
        print(f"| {figure.name} | {figure.database} | {value} | {figure.target} | {verdict} |")


if __name__ == "__main__":
    main()
