"""Security of the served app: its settings, a real server on loopback only, bounded uploads
and no traceback in the browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from core.common.errors import ConfigError
from core.forget.store import list_forget_sets
from core.forget.uploads import MAX_UPLOAD_BYTES, parse_upload, read_upload
from core.store.db import Store
from tests.conftest import ROOT, serving

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11, as Streamlit's own config reader
SETTINGS = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
FORGET_PAGE = str(ROOT / "dashboard" / "views" / "forget_sets.py")


def test_server_settings() -> None:
    server, client = SETTINGS["server"], SETTINGS["client"]
    assert server["address"] == "localhost"  # other addresses: an opt-in, see docs/security.md
    assert server["enableXsrfProtection"] is True
    assert server["enableCORS"] is True  # XSRF on with CORS off is what Streamlit warns about
    assert client["showErrorDetails"] == "none"
    assert SETTINGS["browser"]["gatherUsageStats"] is False
    # the server's bound (MiB) lets through every file the engine accepts, so a file between
    # the two gets the engine's clear message; anything larger the server refuses itself
    assert 1 <= server["maxUploadSize"] <= 5
    assert server["maxUploadSize"] * 2**20 >= MAX_UPLOAD_BYTES
    security = (ROOT / "docs" / "security.md").read_text()
    assert "--server.address 0.0.0.0" in security.split("\n## ", 1)[0]  # before the inputs


def test_oversize_upload_refused_by_the_engine(tmp_path) -> None:
    big = b"1\n" * (MAX_UPLOAD_BYTES // 2 + 1)
    with pytest.raises(ConfigError, match=r"big.csv: 2.0 MB is too large .*at most 2 MB"):
        parse_upload(big, "big.csv", 1347)
    path = tmp_path / "big.csv"
    path.write_bytes(big)
    with pytest.raises(ConfigError, match="too large for a list of indices"):
        read_upload(path)  # refused by its size on disk, before it is read
    ok = b"1\n" * (MAX_UPLOAD_BYTES // 2)
    assert len(parse_upload(ok, "ok.csv")) == MAX_UPLOAD_BYTES // 2  # the bound itself: accepted


def upload(db_path, name: str, data: bytes) -> AppTest:
    at = AppTest.from_file(FORGET_PAGE, default_timeout=120)
    at.run()
    at.radio(key="fs_kind").set_value("upload").run()
    uploader = at.file_uploader(key="fs_upload")
    assert uploader.proto.max_upload_size_mb == SETTINGS["server"]["maxUploadSize"]
    uploader.set_value((name, data, "application/octet-stream")).run()
    at.button(key="fs_preview_btn").click().run()
    assert not at.exception
    return at


def test_oversize_and_pickled_uploads_refused_on_the_page(db_path, tmp_path) -> None:
    at = upload(db_path, "big.csv", b"1\n" * (MAX_UPLOAD_BYTES // 2 + 1))
    assert len(at.error) == 1 and "too large for a list of indices" in at.error[0].value
    from tests.test_security import armed, object_npy

    marker = tmp_path / "PWNED"
    armed(marker)
    at = upload(db_path, "evil.npy", object_npy(marker))
    assert len(at.error) == 1 and "not a readable .npy array" in at.error[0].value
    assert not marker.exists()
    assert list_forget_sets(Store(db_path)).empty


def test_an_unexpected_error_shows_no_traceback(db_path, monkeypatch) -> None:
    """A page that fails in a way nobody planned (here: the store raises a bare RuntimeError)
    shows Streamlit's redacted notice under the app's settings; the same page under
    ``showErrorDetails = "full"`` shows the trace (the check is not blind)."""
    from dashboard import data_access

    def broken():
        raise RuntimeError("internal detail /srv/secret/path.py")

    monkeypatch.setattr(data_access, "store", broken)
    shown = {}
    for mode in ("full", SETTINGS["client"]["showErrorDetails"]):
        st_config.set_option("client.showErrorDetails", mode)
        try:
            at = AppTest.from_file(FORGET_PAGE, default_timeout=120)
            at.run()
        finally:
            st_config.set_option("client.showErrorDetails", SETTINGS["client"]["showErrorDetails"])
        assert len(at.exception) == 1
        e = at.exception[0]
        shown[mode] = " ".join([e.message, *e.stack_trace])
    assert "internal detail" in shown["full"] and "forget_sets.py" in shown["full"]
    assert "internal detail" not in shown["none"] and "secret" not in shown["none"]
    assert "File " not in shown["none"] and "redacted" in shown["none"]


def listening(port: int) -> list[str]:
    """Local addresses (hex, as the kernel writes them) of sockets listening on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if int(hexport, 16) == port and state == "0A":  # 0A: LISTEN
                out.append(addr)
    return out


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """``streamlit run dashboard/app.py`` with the repository's settings (no address given), on
    a free port; yields the port."""
    tmp = tmp_path_factory.mktemp("server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "server.log", "w")  # noqa: SIM115  (closed after the server stops)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port)],
        cwd=ROOT, env={**os.environ, "LAB_DB": str(tmp / "lab.duckdb"), "PYTHONUNBUFFERED": "1"},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        if not serving(proc, port, tmp / "server.log"):
            pytest.fail("streamlit did not start:\n" + (tmp / "server.log").read_text())
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket tables")
def test_real_server_listens_on_loopback_only(real_server) -> None:
    """Every listening socket of the real server is on loopback, and XSRF protection is on: the
    server hands out its cookie and refuses an upload that does not carry the token (403).

    The server's own upload bound is checked after the token and the session, so it is checked
    through the uploader widget (``test_oversize_and_pickled_uploads_refused_on_the_page``: the
    widget carries the configured limit) and the settings (``test_server_settings``)."""
    port = real_server
    url = f"http://127.0.0.1:{port}"
    addrs = listening(port)
    assert addrs and set(addrs) <= LOOPBACK, addrs  # never 0.0.0.0 or ::
    with urllib.request.urlopen(url + "/_stcore/health", timeout=10) as resp:
        cookies = " ".join(resp.headers.get_all("Set-Cookie") or [])
    assert "_streamlit_xsrf=" in cookies
    req = urllib.request.Request(url + "/_stcore/upload_file/s/f", data=b"1", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)  # an upload from a page without the token
    assert err.value.code == 403


def websocket_status(port: int, host: str) -> str:
    """The status line the server answers to the app's websocket handshake sent with ``Host``
    and ``Origin`` both ``host`` (as a page of that site would send it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(
            (
                f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n"
            ).encode()
        )
        return conn.recv(256).split(b"\r\n")[0].decode()


def test_dns_rebinding_is_refused(real_server) -> None:
    """A page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends
    its own name as ``Host``: the app's websocket, which carries all of its data and actions, is
    refused (``server.allowedHosts``); loopback names open it."""
    port = real_server
    assert SETTINGS["server"]["allowedHosts"] == ["localhost", "127.0.0.1", "::1"]
    for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
        status = websocket_status(port, host)
        assert " 403 " in status and " 101 " not in status, (host, status)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert " 101 " in websocket_status(port, host), host
