# run as login user
if test -f /home/cynow/cynow/orders/urls.py; then printf '%s\n' 'present orders/urls.py'; else printf '%s\n' 'missing orders/urls.py'; fi
