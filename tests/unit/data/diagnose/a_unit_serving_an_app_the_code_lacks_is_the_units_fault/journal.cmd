# run as root
journalctl --no-pager -o short-iso -u gunicorn.service -u gunicorn.socket --since '15 min ago' | tail -n 400
