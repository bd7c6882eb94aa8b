"""Settings of the CYNOW replica: the shape of production (sqlite, a file log, /cynow/ prefix)."""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# The secret lives in .env beside the checkout, as on the real server, so that
# permission repairs have a real secret to protect.
_env = BASE_DIR / ".env"
if _env.exists():
    for _line in _env.read_text().splitlines():
        if "=" in _line and not _line.startswith("#"):
            _k, _v = _line.split("=", 1)
            os.environ.setdefault(_k.strip(), _v.strip())



def env(name):
    try:
        return os.environ[name]
    except KeyError:
        raise ImproperlyConfigured(f"Set the {name} environment variable (or put it in .env)")


SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "orders",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = []

# CYNOW_DB_PATH: the database outside the checkout, named by the unit's EnvironmentFile (a
# layout the lab tests use: the tool must run manage.py with the service's environment).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CYNOW_DB_PATH") or BASE_DIR / "db.sqlite3",
    }
}
if os.environ.get("CYNOW_DATABASE") == "postgresql":
    # The PostgreSQL variant: peer authentication over the unix socket (no TCP in the lab).
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "cynow",
            "USER": "cynow",
            "HOST": "/var/run/postgresql",
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

STATIC_URL = "/cynow/static/"
STATIC_ROOT = BASE_DIR / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"}},
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": os.environ.get("CYNOW_DJANGO_LOG", "/var/log/cynow/django.log"),
            "formatter": "plain",
        },
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "django": {"handlers": ["file", "console"], "level": "WARNING"},
        "orders": {"handlers": ["file"], "level": "INFO"},
    },
}
