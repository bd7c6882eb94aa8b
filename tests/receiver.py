"""A webhook receiver on 127.0.0.1 for the notification tests: what Apprise's `json://` scheme
posts, kept in order. A thread of http.server on a free port; nothing leaves loopback."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time


class Receiver:
    """`with Receiver() as r:` ... `r.url` (json://127.0.0.1:PORT/PATH) ... `r.posts`: each
    {"path", "headers", "body"} with the body decoded from JSON."""

    def __init__(self, path: str = "/cynow"):
        self.path = path
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size)
                with receiver.lock:
                    receiver.posts.append(
                        {"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)}
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}{self.path}"

    def bodies(self) -> list[dict]:
        with self.lock:
            return [p["body"] for p in self.posts]

    def events(self) -> list[str]:
        """The event line of each message received, in order."""
        out = []
        for body in self.bodies():
            first = body["message"].splitlines()[0]
            out.append(first.removeprefix("event: "))
        return out

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def free_port() -> int:
    """A loopback port nothing listens on (a receiver that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_posts(r: Receiver, n: int, timeout: float = 10) -> list[dict]:
    end = time.monotonic() + timeout
    while len(r.bodies()) < n and time.monotonic() < end:
        time.sleep(0.05)
    return r.bodies()
