"""Provider credentials at rest: Fernet, with key rotation through MultiFernet."""

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted with any configured key."""


def _fernet() -> MultiFernet:
    keys = [Fernet(key.encode()) for key in settings.CREDENTIALS_KEYS]
    if not keys:
        derived = hashlib.sha256(b"herald-credentials:" + settings.SECRET_KEY.encode()).digest()
        keys = [Fernet(base64.urlsafe_b64encode(derived))]
    return MultiFernet(keys)


def encrypt_credentials(values: dict[str, Any]) -> str:
    if not values:
        return ""
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_credentials(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "provider credentials cannot be decrypted: was CREDENTIALS_KEYS or SECRET_KEY changed?"
        ) from exc
