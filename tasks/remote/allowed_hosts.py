# Django's ALLOWED_HOSTS as the service's settings say, run as the service runs
# (tasks/service.py: its user, WorkingDirectory and environment) with the venv's python:
# `python -B -c SOURCE`, SETTINGS sent before this file (tasks/discovery.py builds it). Only
# the settings module is imported (not django.setup(): no app's code runs). It prints one line
# `CYNOW-ALLOWED-HOSTS {json}`: the list, or null and the error's type (never its message,
# which could quote a setting's value).
import json
import os
import sys

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)  # noqa: F821 (sent before this file)
try:
    from django.conf import settings

    report = {"hosts": [str(h) for h in settings.ALLOWED_HOSTS]}
except Exception as e:  # a settings module that does not load: no name from it
    report = {"hosts": None, "error": type(e).__name__}
print("CYNOW-ALLOWED-HOSTS " + json.dumps(report))
