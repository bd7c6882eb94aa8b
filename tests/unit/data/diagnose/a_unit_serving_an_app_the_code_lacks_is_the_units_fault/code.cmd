# run as cynow
remote_line=$(timeout 30 git -C /home/cynow/cynow ls-remote origin refs/heads/main 2>&1)
ls_remote_exit=$?
remote_sha=$(printf '%s' "$remote_line" | awk 'NF==2 {print $1; exit}')
[ -z "$remote_sha" ] || git -C /home/cynow/cynow cat-file -e "$remote_sha^{commit}" 2>/dev/null || timeout 30 git -C /home/cynow/cynow fetch --quiet --no-tags --no-write-fetch-head --refmap= origin refs/heads/main >/dev/null 2>&1
_cynow_n=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s %s\n' @@cynow-ops@@ "$_cynow_n"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" refs
(
echo "head=$(git -C /home/cynow/cynow rev-parse HEAD 2>&1)"
echo "branch=$(git -C /home/cynow/cynow rev-parse --abbrev-ref HEAD 2>&1)"
echo "ls_remote_exit=$ls_remote_exit"
echo "remote_sha=$remote_sha"
[ -n "$remote_sha" ] || echo "remote_error=$(printf '%s' "$remote_line" | tail -n1)"
if [ -n "$remote_sha" ]; then
  echo "behind=$(git -C /home/cynow/cynow rev-list --count "HEAD..$remote_sha" 2>/dev/null)"
  echo "ahead=$(git -C /home/cynow/cynow rev-list --count "$remote_sha..HEAD" 2>/dev/null)"
fi
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" refs "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" new_commits
(
[ -z "$remote_sha" ] || git -C /home/cynow/cynow log '--format=%h %s' -n 10 "HEAD..$remote_sha" 2>/dev/null
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" new_commits "$_cynow_rc"
printf '%s %s begin %s\n' @@cynow-ops@@ "$_cynow_n" status
(
git -C /home/cynow/cynow --no-optional-locks status --porcelain=v1 2>&1 | head -n 50
)
_cynow_rc=$?
printf '\n%s %s end %s %s\n' @@cynow-ops@@ "$_cynow_n" status "$_cynow_rc"
