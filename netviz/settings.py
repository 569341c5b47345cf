import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Everything a deployment changes comes from the environment (docs/deploy.md).
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = os.environ.get("NETVIZ_SECRET_KEY", DEV_SECRET_KEY)
DEBUG = os.environ.get("NETVIZ_DEBUG", "1") == "1"
ALLOWED_HOSTS = _env_list("NETVIZ_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
# Needed for POSTs when the site is reached over https through a proxy:
# "https://netviz.example.org,https://netviz.internal".
CSRF_TRUSTED_ORIGINS = _env_list("NETVIZ_CSRF_TRUSTED_ORIGINS")

if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "NETVIZ_DEBUG=0 needs a real NETVIZ_SECRET_KEY (the same on every app server)"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "netviz",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # whitenoise serves /static/ from STATIC_ROOT in production (inserted below)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads the body: a body too large to read
    # gets a readable 413 (netviz/web/middleware.py).
    "netviz.web.middleware.TooLargeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "netviz.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "netviz.wsgi.application"


def _database() -> dict[str, object]:
    # DATABASE_URL=postgres://user:pass@host:port/name selects PostgreSQL;
    # SQLite is the default.
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        from urllib.parse import unquote, urlparse

        parts = urlparse(url)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("NETVIZ_SQLITE", str(BASE_DIR / "db.sqlite3")),
        # IMMEDIATE: a transaction takes the write lock when it starts, so the
        # web process and the job workers wait for each other (timeout)
        # instead of failing with "database is locked" on a lock upgrade.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }


DATABASES = {"default": _database()}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Keep connections open between requests (per gunicorn worker thread).
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("NETVIZ_DB_CONN_MAX_AGE", "60"))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("NETVIZ_STATIC_ROOT", str(BASE_DIR / "var" / "static")))

if not DEBUG:
    # gunicorn does not serve files: whitenoise serves the collected,
    # hashed and compressed files (`manage.py collectstatic` at deploy time).
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    # Behind a TLS-terminating proxy (nginx) that sets X-Forwarded-Proto.
    if os.environ.get("NETVIZ_BEHIND_TLS_PROXY", "0") == "1":
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        SESSION_COOKIE_SECURE = True
        CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("NETVIZ_LOG_LEVEL", "WARNING")},
}

# Uploads larger than this are refused with a clear message (bytes).
NETVIZ_MAX_UPLOAD = int(os.environ.get("NETVIZ_MAX_UPLOAD", str(32 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = NETVIZ_MAX_UPLOAD + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = NETVIZ_MAX_UPLOAD + 1024 * 1024

# What one upload may hold (README, "Limits"): the parser stops at the first
# line over a limit, so a hostile dump cannot fill a worker's memory.
NETVIZ_MAX_RULES = int(os.environ.get("NETVIZ_MAX_RULES", "300000"))
NETVIZ_MAX_CHAINS = int(os.environ.get("NETVIZ_MAX_CHAINS", "100000"))
NETVIZ_MAX_SET_MEMBERS = int(os.environ.get("NETVIZ_MAX_SET_MEMBERS", "1000000"))
# Parsed rulesets each worker keeps for tracing, by estimated size (store.py).
NETVIZ_PARSE_CACHE_BYTES = int(os.environ.get("NETVIZ_PARSE_CACHE_MB", "512")) * 1024 * 1024

# Accounts: django.contrib.auth with the pages in netviz/web/pages_accounts.py.
LOGIN_URL = "netviz:login"
LOGIN_REDIRECT_URL = "netviz:home"
LOGOUT_REDIRECT_URL = "netviz:home"

# Jobs (docs/deploy.md): django-tasks with its database backend, so a laptop
# needs no extra server and production runs workers on many machines against
# the one database.  Queue "kernel" holds the jobs that need CAP_NET_ADMIN
# (kernel checks, live reads): only the kernel worker takes it.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "kernel"],
    }
}
# Each job runs in a child process of the worker with these bounds.
NETVIZ_JOB_SECONDS = int(os.environ.get("NETVIZ_JOB_SECONDS", "600"))
NETVIZ_JOB_MEMORY_MB = int(os.environ.get("NETVIZ_JOB_MEMORY_MB", "1024"))
# A running job whose worker has not reported for this long is taken as lost:
# it is queued again, up to NETVIZ_JOB_ATTEMPTS runs, then marked failed.
NETVIZ_JOB_STALE_SECONDS = int(os.environ.get("NETVIZ_JOB_STALE_SECONDS", "60"))
NETVIZ_JOB_ATTEMPTS = int(os.environ.get("NETVIZ_JOB_ATTEMPTS", "2"))
# Uploads larger than this (bytes of dump text) are parsed and stored by a
# worker as a job, with progress on the job page; smaller ones in the request.
NETVIZ_IMPORT_JOB_BYTES = int(os.environ.get("NETVIZ_IMPORT_JOB_BYTES", str(2 * 1024 * 1024)))
# Who may ask the kernel from the web: "users" (signed in, the default),
# "staff", or "anyone" (a trusted, private deployment only).
NETVIZ_KERNEL_CHECKS = os.environ.get("NETVIZ_KERNEL_CHECKS", "users")
