# run as www-data
_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s %s\n' @@cynow-ops@@ "$_cynow_n"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" traverse
(
if test -x /home; then printf '%s\n' 'ok /home'; elif test -e /home; then printf '%s\n' 'denied /home'; else printf '%s\n' 'missing /home'; fi
if test -x /home/cynow; then printf '%s\n' 'ok /home/cynow'; elif test -e /home/cynow; then printf '%s\n' 'denied /home/cynow'; else printf '%s\n' 'missing /home/cynow'; fi
if test -x /home/cynow/cynow; then printf '%s\n' 'ok /home/cynow/cynow'; elif test -e /home/cynow/cynow; then printf '%s\n' 'denied /home/cynow/cynow'; else printf '%s\n' 'missing /home/cynow/cynow'; fi
if test -x /home/cynow/cynow/static; then printf '%s\n' 'ok /home/cynow/cynow/static'; elif test -e /home/cynow/cynow/static; then printf '%s\n' 'denied /home/cynow/cynow/static'; else printf '%s\n' 'missing /home/cynow/cynow/static'; fi
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" traverse "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" socket
(
if test -w /home/cynow/cynow/gunicorn.sock; then echo writable; else echo not-writable; fi
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" socket "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" unreadable
(
cd / && find /home/cynow/cynow/static \( -type d \( ! -executable -o ! -readable \) -o -type f ! -readable \) -printf '%M %u:%g %p\n' 2>&1 | head -n 20
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" unreadable "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" count
(
cd / && find /home/cynow/cynow/static -type f -printf . 2>/dev/null | wc -c
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" count "$_cynow_rc"
