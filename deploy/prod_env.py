"""Print `export NAME=value` lines for the keys `make run-prod` needs and you did not set.

SECRET_KEY, CREDENTIALS_KEYS and HERALD_ERASURE_KEY must outlive a restart (they decrypt
provider credentials and recognise erased numbers), so the ones you did not set are made
once and kept in HERALD_PROD_ENV (default ~/.config/herald/run-prod.env, mode 600).
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
