"""Test settings: the real settings, minus the HTTPS redirect the test client cannot follow."""

from config.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # noqa: S303 - tests only, for speed
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
