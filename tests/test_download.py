"""nucleoflow.download.fetch against a real HTTP server on 127.0.0.1, file:// URLs and local paths."""

import functools
import hashlib
import http.server
import os
import socket
import threading

import pytest

from nucleoflow.download import fetch
from nucleoflow.errors import InputError


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from `directory`, plus a few broken answers under /broken/."""

    def do_GET(self):
        if self.path == "/broken/truncated.zip":
            # Promise 10000 bytes, send 100, hang up.
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", "10000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/broken/chunked.zip":
            # A chunk announced as 0x1000 bytes that stops after 100.
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"1000\r\n" + b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/broken/garbage.zip":
            # Not HTTP at all.
            self.wfile.write(b"this is not an HTTP response\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server on 127.0.0.1 serving that folder."""
    servers = []

    def start(directory):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def source(tmp_path):
    """A small binary file (spanning more than one 1 MiB read) and its sha256."""
    folder = tmp_path / "srv"
    folder.mkdir()
    data = os.urandom(1 << 20) + b"tail" * 1000
    path = folder / "archive.zip"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def dest_dir(tmp_path):
    folder = tmp_path / "download"
    folder.mkdir()
    return folder


def assert_nothing_left(dest):
    assert not dest.exists()
    if dest.parent.exists():
        leftovers = [p.name for p in dest.parent.iterdir()]
        assert not [n for n in leftovers if n.endswith(".part")], leftovers
        assert leftovers == [], leftovers


def test_http_download(serve, source, dest_dir):
    path, digest = source
    dest = dest_dir / "archive.zip"
    assert fetch(f"{serve(path.parent)}/archive.zip", dest) == digest
    assert dest.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in dest_dir.iterdir()) == ["archive.zip"]


def test_http_download_verifies_given_checksum(serve, source, dest_dir):
    path, digest = source
    dest = dest_dir / "archive.zip"
    # Upper case and surrounding whitespace (as read from a file) are accepted.
    assert fetch(f"{serve(path.parent)}/archive.zip", dest, sha256=f" {digest.upper()}\n") == digest
    assert dest.read_bytes() == path.read_bytes()


def test_http_download_creates_missing_parent(serve, source, tmp_path):
    path, digest = source
    dest = tmp_path / "a" / "b" / "archive.zip"
    assert fetch(f"{serve(path.parent)}/archive.zip", dest, sha256=digest) == digest
    assert dest.read_bytes() == path.read_bytes()


def test_real_archive_over_http(serve, crops_zip, crops_sha256, dest_dir):
    expected = crops_sha256
    dest = dest_dir / "stage1_train.zip"
    assert fetch(f"{serve(crops_zip.parent)}/{crops_zip.name}", dest, sha256=expected, timeout=60) == expected
    assert dest.stat().st_size == crops_zip.stat().st_size
    assert sorted(p.name for p in dest_dir.iterdir()) == ["stage1_train.zip"]


def test_checksum_mismatch(serve, source, dest_dir):
    path, digest = source
    url = f"{serve(path.parent)}/archive.zip"
    dest = dest_dir / "archive.zip"
    wrong = "0" * 64
    with pytest.raises(InputError) as err:
        fetch(url, dest, sha256=wrong)
    message = str(err.value)
    assert url in message and err.value.path == url
    assert "checksum mismatch" in message and wrong in message and digest in message
    assert "data.url" in message
    assert_nothing_left(dest)


def test_checksum_mismatch_keeps_previous_file(serve, source, dest_dir):
    path, _ = source
    dest = dest_dir / "archive.zip"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(InputError):
        fetch(f"{serve(path.parent)}/archive.zip", dest, sha256="1" * 64)
    assert dest.read_bytes() == b"previous good copy"
    assert [p.name for p in dest_dir.iterdir()] == ["archive.zip"]


def test_http_404(serve, source, dest_dir):
    path, _ = source
    url = f"{serve(path.parent)}/missing.zip"
    dest = dest_dir / "archive.zip"
    with pytest.raises(InputError) as err:
        fetch(url, dest)
    assert url in str(err.value) and "404" in str(err.value) and "data.url" in str(err.value)
    assert_nothing_left(dest)


@pytest.mark.parametrize("name", ["truncated.zip", "chunked.zip"])
def test_truncated_body(serve, tmp_path, dest_dir, name):
    url = f"{serve(tmp_path)}/broken/{name}"
    dest = dest_dir / "archive.zip"
    with pytest.raises(InputError) as err:
        fetch(url, dest, timeout=10)
    assert url in str(err.value)
    if name == "truncated.zip":
        assert "truncated" in str(err.value) and "100 of 10000" in str(err.value)
    assert_nothing_left(dest)


def test_server_answers_garbage(serve, tmp_path, dest_dir):
    url = f"{serve(tmp_path)}/broken/garbage.zip"
    dest = dest_dir / "archive.zip"
    with pytest.raises(InputError) as err:
        fetch(url, dest, timeout=10)
    assert url in str(err.value)
    assert_nothing_left(dest)


def test_unreachable_url(dest_dir):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    dest = dest_dir / "archive.zip"
    with pytest.raises(InputError) as err:
        fetch(url, dest, timeout=5)
    assert url in str(err.value) and "unreachable" in str(err.value) and "data.url" in str(err.value)
    assert_nothing_left(dest)


def test_file_url(source, dest_dir):
    path, digest = source
    dest = dest_dir / "archive.zip"
    assert fetch(path.as_uri(), dest, sha256=digest) == digest
    assert dest.read_bytes() == path.read_bytes()


def test_local_path(source, dest_dir):
    path, digest = source
    dest = dest_dir / "archive.zip"
    assert fetch(str(path), dest, sha256=digest) == digest
    assert dest.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("as_uri", [False, True])
def test_missing_local_path(tmp_path, dest_dir, as_uri):
    missing = tmp_path / "nowhere" / "stage1_train.zip"
    url = missing.as_uri() if as_uri else str(missing)
    dest = dest_dir / "archive.zip"
    with pytest.raises(InputError) as err:
        fetch(url, dest)
    assert url in str(err.value) and "data.url" in str(err.value)
    assert_nothing_left(dest)


def test_local_checksum_mismatch(source, dest_dir):
    path, _ = source
    dest = dest_dir / "archive.zip"
    with pytest.raises(InputError) as err:
        fetch(str(path), dest, sha256="f" * 64)
    assert str(path) in str(err.value) and "checksum mismatch" in str(err.value)
    assert_nothing_left(dest)
