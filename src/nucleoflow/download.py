"""Fetch the data archive from an HTTP(S) URL, a file:// URL or a local path."""

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .atomic import atomic_path
from .errors import InputError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
OFFLINE_HINT = (
    "Download the archive on a machine with internet access and set data.url "
    "to its local path (or a file:// URL), e.g. --config data='{url: /path/stage1_train.zip}'"
)


def _open(url, timeout):
    """Return (readable stream, expected size or None) for a URL or a local path."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https", "ftp"):
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise InputError(url, f"the server answered HTTP {exc.code} {exc.reason}", OFFLINE_HINT) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise InputError(url, f"is unreachable ({reason})", OFFLINE_HINT) from exc
        length = response.headers.get("Content-Length")
        return response, int(length) if length else None
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)) if scheme == "file" else Path(url)
    try:
        return open(path, "rb"), path.stat().st_size
    except OSError as exc:
        raise InputError(url, f"cannot be opened ({exc.strerror})", OFFLINE_HINT) from exc


def fetch(url, dest, sha256=None, timeout=60):
    """Stream `url` to `dest` via a temporary file; verify size and checksum before renaming."""
    digest = hashlib.sha256()
    stream, expected = _open(url, timeout)
    received, last_report, started = 0, 0.0, time.monotonic()
    with stream, atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            while True:
                try:
                    block = stream.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise InputError(url, f"the transfer broke after {received} bytes ({exc})", OFFLINE_HINT) from exc
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                now = time.monotonic()
                if now - last_report > 5:
                    total = f" of {expected / 1e6:.1f}" if expected else ""
                    log.info("downloaded %.1f%s MB (%.1f MB/s)", received / 1e6, total, received / 1e6 / (now - started))
                    last_report = now
        if expected is not None and received != expected:
            raise InputError(url, f"the body is truncated: got {received} of {expected} bytes", OFFLINE_HINT)
        actual = digest.hexdigest()
        if sha256 and actual.lower() != sha256.strip().lower():
            raise InputError(
                url,
                f"checksum mismatch: expected sha256 {sha256}, got {actual}",
                "The file is corrupt or not the expected archive; fetch it again or fix data.sha256. "
                + OFFLINE_HINT,
            )
    log.info("saved %s (%d bytes, sha256 %s)", dest, received, actual)
    return actual

