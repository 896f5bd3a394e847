"""Print `export NAME=value` lines for what `make run-prod` needs and you did not set.

SECRET_KEY, CREDENTIALS_KEYS and HERALD_ERASURE_KEY must outlive a restart (they decrypt
provider credentials and recognise erased numbers), so the ones you did not set are made
once and kept in HERALD_PROD_ENV (default ~/.config/herald/run-prod.env, mode 600).

Production settings send no mail without EMAIL_URL (rather than print reset links into the
logs). Unless you set one, password-reset mails are written as files into a folder only you
can read, next to that file, and this says where.
"""

import base64
import os
import secrets
import shlex
import sys
from pathlib import Path

KEYS = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "CREDENTIALS_KEYS": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "HERALD_ERASURE_KEY": lambda: secrets.token_urlsafe(32),
}


def kept_keys(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def mail_folder(next_to: Path) -> Path:
    folder = next_to.parent / "run-prod-mail"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def main() -> int:
    path = Path(os.environ.get("HERALD_PROD_ENV") or Path.home() / ".config/herald/run-prod.env")
    kept = kept_keys(path)
    missing = {name: make() for name, make in KEYS.items() if name not in kept}
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept.update(missing)
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={value}\n" for name, value in kept.items()))
    for name in KEYS:
        if not os.environ.get(name):
            sys.stdout.write(f"export {name}={shlex.quote(kept[name])}\n")
    if not os.environ.get("EMAIL_URL"):
        folder = mail_folder(path).resolve()
        # django-environ reads the path after "filemail://" less its first slash.
        sys.stdout.write(f"export EMAIL_URL={shlex.quote(f'filemail:///{folder}')}\n")
        sys.stderr.write(
            f"Herald: password-reset mails are written to {folder} (set EMAIL_URL to send them)\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
