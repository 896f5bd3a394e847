"""The deployment examples under deploy/ and Procfile.prod: what can be checked here is.

systemd units are verified by `systemd-analyze verify` with this checkout standing in for
/opt/herald (it checks the syntax, the directives and that ExecStart's program exists).
"""

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import environ
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ["herald-web.service", "herald-worker@.service"]


def procfile(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def django_commands() -> set[str]:
    listed = subprocess.run(
        [sys.executable, "manage.py", "help", "--commands"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return set(listed.stdout.split())


def check_command(command: str, commands: set[str]) -> None:
    """Each step runs a program this checkout has, with arguments it accepts."""
    for step in command.split("&&"):
        words = [w for w in shlex.split(step) if "=" not in w.split("/")[0]]
        program, *args = words
        if program == "python":
            assert args[0] == "manage.py" and args[1] in commands, step
        else:
            assert program == "gunicorn" and shutil.which("gunicorn", path=str(ROOT / ".venv/bin"))
            assert args[:2] == ["-c", "config/gunicorn.conf.py"] and args[2] == "config.wsgi"


def test_procfiles_run_commands_that_exist() -> None:
    commands = django_commands()
    assert "qcluster" in commands
    prod = procfile(ROOT / "Procfile.prod")
    assert set(prod) == {"web", "worker1", "worker2"}
    paas = procfile(DEPLOY / "Procfile")
    assert set(paas) == {"release", "web", "worker"}
    for command in [*prod.values(), *paas.values()]:
        check_command(command, commands)


def test_gunicorn_reads_its_config_file() -> None:
    checked = subprocess.run(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "-c",
            "config/gunicorn.conf.py",
            "--check-config",
            "config.wsgi",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": str(ROOT / ".venv/bin"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": os.environ["SECRET_KEY"],  # production settings start on no other
        },
    )
    assert checked.returncode == 0, checked.stderr


def read_unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / name)
    return unit


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units_start_herald_from_its_virtualenv(name: str) -> None:
    service = read_unit(name)["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert program.startswith("/opt/herald/.venv/bin/")
    assert service["WorkingDirectory"] == "/opt/herald"
    assert service["EnvironmentFile"] == "/etc/herald/herald.env"
    assert service["User"] == "herald"
    assert (ROOT / ".venv/bin" / Path(program).name).exists()
    if name.startswith("herald-worker"):
        assert args == ["manage.py", "qcluster"]


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verifies_the_units(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("no systemd-analyze on this machine")
    env_file = tmp_path / "herald.env"
    env_file.write_text((DEPLOY / "herald.env.example").read_text())
    text = (DEPLOY / "systemd" / name).read_text()
    text = text.replace("/etc/herald/herald.env", str(env_file)).replace("/opt/herald", str(ROOT))
    # This machine has no `herald` user; root stands in.
    text = re.sub(r"^(User|Group)=herald$", r"\1=root", text, flags=re.MULTILINE)
    unit = tmp_path / name.replace("@.", "@1.")  # a template is verified as an instance
    unit.write_text(text)
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr


def test_systemd_analyze_would_notice_a_missing_program(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("no systemd-analyze on this machine")
    unit = tmp_path / "herald-web.service"
    unit.write_text((DEPLOY / "systemd" / "herald-web.service").read_text())
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode != 0 and "/opt/herald/.venv/bin/gunicorn" in verified.stderr


def test_the_env_example_sets_only_variables_herald_reads() -> None:
    names = {
        line.lstrip("#").split("=", 1)[0]
        for line in (DEPLOY / "herald.env.example").read_text().splitlines()
        if re.match(r"#?[A-Z_]+=", line)
    }
    read = set()
    for source in ("config/settings.py", "config/gunicorn.conf.py"):
        text = (ROOT / source).read_text()
        read |= set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z_]+)["']""", text))
        read |= set(re.findall(r"""environ\.get\(\s*["']([A-Z_]+)["']""", text))
    assert names - read == set()
    must = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CREDENTIALS_KEYS"}
    assert must <= names


@pytest.mark.postgres
def test_run_prod_creates_its_database_once(tmp_path: Path) -> None:
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    url = f"{server}/herald_createdb_check_{os.getpid()}"

    def createdb() -> str:
        done = subprocess.run(
            [sys.executable, "deploy/createdb.py"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    try:
        assert createdb().endswith("created")
        assert createdb().endswith("exists")
    finally:
        config = environ.Env.db_url_config(url)
        with psycopg.connect(
            psycopg.conninfo.make_conninfo(
                host=config["HOST"],
                port=config["PORT"] or None,
                user=config["USER"],
                password=config.get("PASSWORD") or None,
                dbname="postgres",
            ),
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{config["NAME"]}"')


SEND_A_MAIL = (
    "import django; django.setup(); from django.core.mail import send_mail; "
    "send_mail('Reset', 'the link', 'herald@localhost', ['sam@example.com'])"
)


def test_run_prod_keeps_its_keys_and_writes_mail_to_a_private_folder(tmp_path: Path) -> None:
    kept = tmp_path / "run-prod.env"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "CREDENTIALS_KEYS", "HERALD_ERASURE_KEY", "EMAIL_URL")
    }

    def prod_env() -> dict[str, str]:
        done = subprocess.run(
            [sys.executable, "deploy/prod_env.py"],
            cwd=ROOT,
            env={**clean, "HERALD_PROD_ENV": str(kept)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "password-reset mails are written to" in done.stderr  # the operator is told
        return dict(shlex.split(line)[1].split("=", 1) for line in done.stdout.splitlines())

    exported = prod_env()
    assert exported == prod_env()  # kept, not made again
    folder = tmp_path / "run-prod-mail"
    assert exported["EMAIL_URL"] == f"filemail:///{folder}"
    assert folder.stat().st_mode & 0o777 == 0o700
    env = {**clean, **exported, "DEBUG": "False", "DJANGO_SETTINGS_MODULE": "config.settings"}
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "herald.E020" not in checked.stderr and "herald.W021" not in checked.stderr
    sent = subprocess.run(
        [sys.executable, "-c", SEND_A_MAIL],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    assert "the link" not in sent.stdout + sent.stderr
    [written] = folder.iterdir()
    assert "the link" in written.read_text()
