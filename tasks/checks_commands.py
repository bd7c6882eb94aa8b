"""Temporary, during the layout move: the deploy's builders still import the health requests
from here. Their home is tasks/checks/http.py."""

from tasks.checks.http import http_script

__all__ = ["http_script"]
