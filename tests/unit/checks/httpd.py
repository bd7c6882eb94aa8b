"""A tiny HTTP server on a unix socket for the health requests' tests: real curl and the
python fallback (tasks/remote/http_get.py) ask it. Its pages redirect as Django does."""

from __future__ import annotations

import contextlib
import http.server
import socketserver
import threading

# path -> (status, Location or None)
PAGES = {
    "/ok/": (200, None),
    "/slash": (301, "/ok/"),  # APPEND_SLASH: relative
    "/abs": (302, "http://cynow.lab/ok/"),  # absolute, to the site's own name
    "/away": (302, "http://other.example/ok/"),  # another site
    "/https": (301, "https://cynow.lab/ok/"),  # another scheme: another site
    "/loop": (302, "/loop"),
    "/broken": (500, None),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        status, location = PAGES.get(self.path, (404, None))
        self.server.seen.append(
            (self.path, self.headers.get("Host"), self.headers.get("X-Forwarded-Proto"))
        )
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def address_string(self):
        return "unix"

    def log_message(self, *args):  # quiet: the test reads `seen`
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def serving(path: str):
    """An HTTP server listening on the unix socket `path`; yields its list of requests seen
    (path, Host, X-Forwarded-Proto)."""
    server = Server(path, Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.seen
    finally:
        server.shutdown()
        server.server_close()
