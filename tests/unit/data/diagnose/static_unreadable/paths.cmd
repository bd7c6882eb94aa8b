# run as cynow
if test -d /home/cynow/cynow/venv/bin/gunicorn; then printf '%s\n' 'dir /home/cynow/cynow/venv/bin/gunicorn'; elif test -x /home/cynow/cynow/venv/bin/gunicorn; then printf '%s\n' 'exec /home/cynow/cynow/venv/bin/gunicorn'; elif test -e /home/cynow/cynow/venv/bin/gunicorn; then printf '%s\n' 'file /home/cynow/cynow/venv/bin/gunicorn'; else printf '%s\n' 'missing /home/cynow/cynow/venv/bin/gunicorn'; fi
if test -d /home/cynow/cynow; then printf '%s\n' 'dir /home/cynow/cynow'; elif test -x /home/cynow/cynow; then printf '%s\n' 'exec /home/cynow/cynow'; elif test -e /home/cynow/cynow; then printf '%s\n' 'file /home/cynow/cynow'; else printf '%s\n' 'missing /home/cynow/cynow'; fi
if id -u cynow >/dev/null 2>&1; then printf '%s\n' 'user cynow'; else printf '%s\n' 'nouser cynow'; fi
if getent group www-data >/dev/null; then printf '%s\n' 'group www-data'; else printf '%s\n' 'nogroup www-data'; fi
