"""``tests.conftest.serving``: a test's server is taken as up only once it serves on its port.

The suite runs on two workers, each picking free ports; a server whose port the other worker's
server took first exits, while the health check answers from the other server."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from tests.conftest import serving


class Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (the handler's name)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Proc:
    """A server process that is running until ``exits_after`` polls (``None``: never exits)."""

    def __init__(self, exits_after=None):
        self.polls, self.exits_after = 0, exits_after

    def poll(self):
        self.polls += 1
        return 1 if self.exits_after is not None and self.polls > self.exits_after else None


@pytest.fixture
def other_server():
    """Another server answering the health check on a free port."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_server_whose_port_was_taken_is_not_taken_for_up(other_server, tmp_path):
    log = tmp_path / "server.log"
    log.write_text("Port is not available\n")
    assert serving(Proc(exits_after=3), other_server, log, timeout=30) is False


def test_a_server_that_names_its_port_is_up(other_server, tmp_path):
    log = tmp_path / "server.log"
    log.write_text(
        f"  You can now view your Streamlit app in your browser.\n\n  URL: http://localhost:{other_server}\n"
    )
    assert serving(Proc(), other_server, log, timeout=30) is True
    log.write_text(f"  URL: http://localhost:{other_server}1\n")  # another port's line
    assert serving(Proc(), other_server, log, timeout=1) is False


def test_a_server_that_never_answers_times_out(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    log.write_text(f"URL: http://localhost:{port}\n")
    assert serving(Proc(), port, log, timeout=1) is False
