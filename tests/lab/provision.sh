#!/bin/bash
# Runs once inside the lab image (systemd-nspawn, not booted) to make it the CYNOW server
# the guide describes. Per-host details (addresses, host keys) are written at boot time.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
SRC=/opt/lab-src
APP=/home/cynow/cynow

# Users: the app user in www-data with passwordless sudo (as the guide assumes), root for the
# tests that break things, "deployer" whose sudo asks for a password, and "admin", the separate
# login with passwordless sudo a hardened server has (CYNOW_LAB_HARDENED=1 drops cynow's sudo).
useradd --create-home --shell /bin/bash --groups www-data,sudo cynow
useradd --create-home --shell /bin/bash --groups sudo deployer
useradd --create-home --shell /bin/bash --groups sudo admin
echo 'deployer:lab-sudo-password' | chpasswd
echo 'cynow ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/cynow
echo 'admin ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/admin
chmod 0440 /etc/sudoers.d/cynow /etc/sudoers.d/admin
chmod 0755 /home/cynow
# Every login's user manager starts at boot (what `loginctl enable-linger` writes): sshd's PAM
# session then does not wait for systemd --user to start, which in a container on a busy
# 2-core machine could take longer than a channel open may (CI: "Timeout opening channel" on a
# healthy host). A server whose admins log in often has them running too.
install -d /var/lib/systemd/linger
touch /var/lib/systemd/linger/cynow /var/lib/systemd/linger/deployer \
  /var/lib/systemd/linger/admin /var/lib/systemd/linger/root
for u in cynow deployer admin root; do
  h=$(getent passwd "$u" | cut -d: -f6)
  install -d -m 0700 -o "$u" -g "$u" "$h/.ssh"
  install -m 0600 -o "$u" -g "$u" "$SRC/authorized_keys" "$h/.ssh/authorized_keys"
done

# sshd: keys only; the listen address and host keys are per lab host.
cat > /etc/ssh/sshd_config.d/10-lab.conf <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
Include /etc/ssh/lab-host.conf
CONF
rm -f /etc/ssh/ssh_host_*

# The origin the server pulls from: a bare repository on the host itself.
install -d -o cynow -g cynow /srv/git
su cynow -c "git init -q --bare -b main /srv/git/cynow.git"
su cynow -c "git config --global user.name 'CYNOW developer' && git config --global user.email dev@cynow.lab && git config --global init.defaultBranch main"
work=$(mktemp -d)
cp -a "$SRC/app/." "$work/"
chown -R cynow:cynow "$work"
su cynow -c "cd '$work' && git init -q -b main && git add -A && git commit -q -m 'CYNOW: orders app' && git push -q /srv/git/cynow.git main"
rm -rf "$work"
su cynow -c "git clone -q /srv/git/cynow.git $APP"

# The lab's package index: wheels fetched on the lab's host, kept in /opt/wheels, and pip told
# to use them (a host with no network, as if behind a mirror). Then the venv in the checkout.
cp -r "$SRC/wheels" /opt/wheels && chmod -R a+rX /opt/wheels
printf '[global]\nno-index = true\nfind-links = /opt/wheels\ndisable-pip-version-check = true\n' > /etc/pip.conf
su cynow -c "python3 -m venv $APP/venv && $APP/venv/bin/pip install -q -r $APP/requirements.txt"
echo "DJANGO_SECRET_KEY=lab-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$APP/.env"
chown cynow:cynow "$APP/.env" && chmod 0640 "$APP/.env"

install -d -o cynow -g www-data -m 0775 /var/log/cynow
install -o cynow -g www-data -m 0664 /dev/null /var/log/cynow/django.log
su cynow -c "cd $APP && venv/bin/python manage.py migrate --noinput -v0 && venv/bin/python manage.py collectstatic --noinput -v0"
chown -R cynow:www-data "$APP"

# gunicorn.service exactly as the guide shows it.
install -m 0644 "$SRC/gunicorn.service" /etc/systemd/system/gunicorn.service
systemctl enable gunicorn.service ssh.service nginx.service

# nginx: the guide's site; the listen line is rewritten per lab host.
install -m 0644 "$SRC/nginx-site" /etc/nginx/sites-available/cynow
ln -sf /etc/nginx/sites-available/cynow /etc/nginx/sites-enabled/cynow
rm -f /etc/nginx/sites-enabled/default

# PostgreSQL for the PostgreSQL variant: not started at boot. Lab hosts share one network
# namespace, so it listens on its unix socket only.
ls -d /etc/postgresql/*/main >/dev/null 2>&1 || pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main
for conf in /etc/postgresql/*/main; do
  mkdir -p "$conf/conf.d"
  printf "listen_addresses = ''\n" > "$conf/conf.d/lab.conf"
done
systemctl disable postgresql.service

# A container sharing the host's network must not manage it, nor wait on terminals.
systemctl mask systemd-networkd.service systemd-resolved.service networking.service \
  systemd-timesyncd.service getty@tty1.service console-getty.service 2>/dev/null || true
# Keep the journal small: every reset starts a new one.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=persistent\nSystemMaxUse=32M\n' > /etc/systemd/journald.conf.d/lab.conf
echo "cynow-lab" > /etc/hostname
apt-get clean
rm -rf /var/lib/apt/lists/* "$SRC"
