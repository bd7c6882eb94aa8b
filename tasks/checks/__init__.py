"""Read-only checks, one module per step of the 502 guide. Each module holds its facts (the
remote command and the parser of its output) and its checks (pure judgements of the facts);
nothing here touches the network. `fab diagnose` (tasks/diagnose.py) runs every module's facts
and then its checks, in this order: the guide's.

    step 0  tools         the commands the checks run on the server: present? (curl, ss...)
    step 1  services      gunicorn, its socket unit and nginx: running, failed, looping?
    step 2  logs          the journal, nginx's error.log, django.log, against the catalogue
    step 3  unit_file     the gunicorn unit: user, directories, binary, bind, reloaded?
    step 4  nginx         nginx -t, the site enabled, proxy_pass to the socket gunicorn binds
    step 5  socket        the socket file and who listens on it (and step 1's port 8000)
    step 6  permissions   www-data reaches the socket and static files; the app user its db
    step 7  http          the health URLs through the socket and nginx; gunicorn by hand
    step 8  django        the venv's python imports the app, Django's checks, migrations
    step 9  checkout      the deployed commit against origin/main, uncommitted changes
    then    layout        the config against the server's unit, nginx and Django (step 10)
"""

from tasks.checks import (
    checkout,
    django,
    http,
    layout,
    logs,
    nginx,
    permissions,
    services,
    socket,
    tools,
    unit_file,
)

STEPS = [
    tools,
    services,
    logs,
    unit_file,
    nginx,
    socket,
    permissions,
    http,
    django,
    checkout,
    layout,
]
FACTS = [fact for step in STEPS for fact in step.FACTS]
