# run as root
_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s %s\n' @@cynow-ops@@ "$_cynow_n"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" test
(
nginx -T 2>&1
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" test "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" site
(
cat /etc/nginx/sites-available/cynow 2>&1
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" site "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" enabled
(
for f in /etc/nginx/sites-enabled/*; do [ -e "$f" ] || [ -L "$f" ] || continue; printf '%s -> %s\n' "$f" "$(readlink -f "$f")"; done
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" enabled "$_cynow_rc"
