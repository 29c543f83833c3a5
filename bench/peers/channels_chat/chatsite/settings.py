"""Django settings of the tutorial's chat site, set for production as Django's checklist says.

DEBUG off, explicit ALLOWED_HOSTS, a secret from the environment, and the channel layer of
the tutorial (channels_redis' RedisChannelLayer) on the bench's Redis database. The SQLite
file is never touched by the chat path (anonymous sessions need no query); it lives in the
bench's temporary folder. Environment: BENCH_REDIS_URL, BENCH_DATA_DIR, BENCH_SECRET_KEY.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", "/tmp"))

SECRET_KEY = os.environ.get("BENCH_SECRET_KEY", "bench-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "chat",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "channels-chat.sqlite3"),
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")],
            "prefix": os.environ.get("BENCH_CHANNELS_PREFIX", "asgi"),
        },
    },
}

USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
