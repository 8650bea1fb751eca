"""Running the web application: binding its socket (clear errors, port 0 = any free port) and, for tests and
the screenshot script, serving it from a background thread."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

from ..errors import InputError

__all__ = ["bind", "url_of", "background"]


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready socket on ``host:port``; a one-line :class:`InputError` when it cannot be had."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


@contextlib.contextmanager
def background(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0):
    """Serve ``app`` with Uvicorn in a daemon thread; yields the page's address, stops the server at exit."""
    import uvicorn

    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.time() + timeout
    while not server.started and thread.is_alive() and time.time() < end:
        time.sleep(0.05)
    try:
        if not server.started:
            raise RuntimeError(f"the web server did not start within {timeout} s")
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
