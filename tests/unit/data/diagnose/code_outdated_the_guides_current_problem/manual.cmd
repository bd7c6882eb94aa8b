# run as cynow
cd /home/cynow/cynow || exit 90
tmp=$(mktemp -d /tmp/cynow-diagnose.XXXXXX)
PYTHONDONTWRITEBYTECODE=1 timeout 15 /home/cynow/cynow/venv/bin/gunicorn --workers 1 --graceful-timeout 1 --bind "unix:$tmp/g.sock" config.wsgi:application >"$tmp/log" 2>&1 &
pid=$!
i=0; while [ $i -lt 100 ] && [ ! -S "$tmp/g.sock" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; i=$((i+1)); done
if [ -S "$tmp/g.sock" ]; then
  http=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$tmp/g.sock" http://localhost/cynow/ 2>&1)
  kill -TERM $pid 2>/dev/null
else http=none; fi
wait $pid; code=$?
_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s %s\n' @@cynow-ops@@ "$_cynow_n"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" result
(
printf 'manual_http=%s\nmanual_exit=%s\n' "$http" "$code"
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" result "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" log
(
tail -n 40 "$tmp/log"
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" log "$_cynow_rc"
rm -rf "$tmp"
