import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Load every URL and view now, so that a broken deploy fails when gunicorn boots rather than
# on the first request of each worker.
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns
