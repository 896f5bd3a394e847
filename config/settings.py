"""Herald settings: read once from the environment (django-environ).

Every knob an operator may turn is listed in README.md under "Configuration".
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for development; the process environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development gets a throwaway key; production must bring its own (checked by
# `check --deploy`, which refuses short or "django-insecure-" keys).
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-herald-development-only-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Keys for provider credentials at rest (Fernet, comma separated, newest first so
# old keys still decrypt while rows are re-saved). Derived from SECRET_KEY when
# unset, which a deploy check warns about: rotating SECRET_KEY would lose them.
CREDENTIALS_KEYS = env.list("CREDENTIALS_KEYS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "contacts",
    "messaging",
    "campaigns",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context.dashboard",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write to the same file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front so a transaction never
    # fails half-way on a lock upgrade, and the timeout waits out the other one.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
# Password reset e-mails: console by default; set EMAIL_URL (e.g. smtp://user:pw@host:587)
# to really send them.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="herald@localhost")

# Herald's own knobs.
HERALD_DEFAULT_REGION = env.str("HERALD_DEFAULT_REGION", default="GB")
HERALD_DISPATCH_BATCH_SIZE = env.int("HERALD_DISPATCH_BATCH_SIZE", default=500)
HERALD_SEND_LEASE_SECONDS = env.int("HERALD_SEND_LEASE_SECONDS", default=300)
# A message in doubt is looked up at its provider only after this long, so a request
# the provider is still working on is not mistaken for one it never received.
HERALD_RECONCILE_AFTER_SECONDS = env.int("HERALD_RECONCILE_AFTER_SECONDS", default=60)
# The dashboard's message counts per campaign are kept this long (0: counted every time).
HERALD_LIVE_COUNTS_SECONDS = env.int("HERALD_LIVE_COUNTS_SECONDS", default=2)
HERALD_MAX_SEND_ATTEMPTS = env.int("HERALD_MAX_SEND_ATTEMPTS", default=5)
# Uploaded contact files up to this size are checked in the request; larger ones by a worker.
HERALD_IMPORT_INLINE_CHECK_BYTES = env.int("HERALD_IMPORT_INLINE_CHECK_BYTES", default=2_000_000)
# An import with no progress for this long lost its worker and may be resumed.
HERALD_IMPORT_STALL_SECONDS = env.int("HERALD_IMPORT_STALL_SECONDS", default=600)
HERALD_HEARTBEAT_STALE_SECONDS = env.int("HERALD_HEARTBEAT_STALE_SECONDS", default=180)

# django-q2: tasks are wake-ups; Message rows are the truth. `retry` must exceed
# `timeout` so a slow task is never handed to a second worker while it still runs.
Q_CLUSTER = {
    "name": "herald",
    "orm": "default",
    "workers": env.int("Q_WORKERS", default=2),
    # A task running longer is stopped; one whose worker died is handed out again after
    # `retry` seconds (which must exceed `timeout`).
    "timeout": env.int("Q_TIMEOUT", default=600),
    "retry": env.int("Q_RETRY", default=720),
    "max_attempts": 3,
    "catch_up": False,
    "ack_failures": True,
    "poll": 0.5,
    "save_limit": 1000,
    "label": "Tasks",
    "sync": env.bool("Q_SYNC", default=False),
    # django-q2 logs every task at INFO; the minute tick would drown everything else.
    "log_level": env.str("Q_LOG_LEVEL", default="WARNING"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Production hardening: on whenever DEBUG is off, so `check --deploy` is clean.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
    if env.bool("BEHIND_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
