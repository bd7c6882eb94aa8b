# run as root
addr=$(ss -tlnpH | awk '/"nginx"/ {print $4}' | grep -E ':80$' | head -n1)
[ -n "$addr" ] || addr=$(ss -tlnpH | awk '/"nginx"/ {print $4; exit}')
case "$addr" in 0.0.0.0:*|\*:*|\[::\]:*) addr=127.0.0.1:${addr##*:};; esac
echo "nginx_addr=$addr"
printf 'socket %s %s\n' /cynow/ "$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 --unix-socket /home/cynow/cynow/gunicorn.sock http://localhost/cynow/ 2>&1 | tr '\n' ' ')"
if [ -n "$addr" ]; then printf 'nginx %s %s\n' /cynow/ "$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 "http://$addr"/cynow/ 2>&1 | tr '\n' ' ')"; else printf '%s\n' 'nginx /cynow/ none no-listener'; fi
printf 'socket %s %s\n' /cynow/orders/ "$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 --unix-socket /home/cynow/cynow/gunicorn.sock http://localhost/cynow/orders/ 2>&1 | tr '\n' ' ')"
if [ -n "$addr" ]; then printf 'nginx %s %s\n' /cynow/orders/ "$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 "http://$addr"/cynow/orders/ 2>&1 | tr '\n' ' ')"; else printf '%s\n' 'nginx /cynow/orders/ none no-listener'; fi
