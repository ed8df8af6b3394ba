"""Downloading one file: a timeout on every network call, a checksum, one retry.

    >>> download_file(url, folder / "cifar-10-python.tar.gz", md5="c58f…", timeout=30)

- Every read from the network has a timeout (`timeout` seconds), so a stalled
  connection in a classroom fails in seconds instead of hanging a notebook; a
  connection that trickles (less than MIN_BYTES_PER_S on average over any
  `timeout` seconds) counts as stalled too, and the whole download has a
  deadline (`deadline` seconds).
- The file is written to "<name>.part" and renamed only when complete (as many
  bytes as the server announced) and its MD5 matches; a mismatch deletes the bad
  bytes and tries once more.
- Failures raise DownloadError with one line naming the file, the address and
  the reason (the caller adds where to put a copy fetched by hand).
`opener(url, timeout=…)` replaces `urllib.request.urlopen` in tests.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_DEADLINE_S = 3600.0           # the whole file: CIFAR-10 (170 MB) at 50 kB/s
MIN_BYTES_PER_S = 1024                # slower than this over `timeout` seconds: stalled
CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be downloaded (no network, a stalled connection, a bad checksum)."""


def download_file(url: str, dest: Path, md5: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                  deadline: float = DEFAULT_DEADLINE_S, retries: int = 1, opener=None,
                  progress: bool = True) -> Path:
    """Download `url` to `dest`, checking its MD5; retry `retries` times after a bad checksum.

    timeout: seconds without data (or with less than MIN_BYTES_PER_S on average) before
    the connection counts as stalled; deadline: seconds for the whole file.
    Returns `dest`. Raises DownloadError (and leaves no partial file) when it fails.
    """
    dest = Path(dest)
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0 seconds, got {value}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    opener = opener or urllib.request.urlopen
    for attempt in range(retries + 1):
        got = _fetch(url, dest, timeout, deadline, opener, progress)
        if md5 is None or got == md5:
            return dest
        dest.unlink(missing_ok=True)
        if attempt == retries:
            raise DownloadError(
                f"{dest.name} from {url}: checksum mismatch after {retries + 1} tries "
                f"(MD5 {got}, expected {md5})")
    return dest


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, timeout: float, deadline: float, opener, progress: bool) -> str:
    """Stream url into dest (via dest.part); return the MD5 of what arrived."""
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    start = time.monotonic()
    try:
        with opener(url, timeout=timeout) as response, open(part, "wb") as out:
            total = _content_length(response)
            read = getattr(response, "read1", None) or response.read     # read1: returns what has arrived
            received, window_start, window_bytes = 0, start, 0
            bar = _bar(dest.name, total, progress)
            try:
                while chunk := read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    window_bytes += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    now = time.monotonic()
                    if now - start > deadline:
                        raise DownloadError(f"{dest.name} from {url}: not complete after the {deadline:g} s "
                                            f"allowed ({_amount(received, total)}); try again later")
                    if now - window_start >= timeout:
                        if window_bytes < MIN_BYTES_PER_S * (now - window_start):
                            raise DownloadError(f"{dest.name} from {url}: the connection stalled (only "
                                                f"{window_bytes} bytes in {now - window_start:.0f} s)")
                        window_start, window_bytes = now, 0
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and received != total:
                raise DownloadError(f"{dest.name} from {url}: the connection closed early "
                                    f"({_amount(received, total)})")
        os.replace(part, dest)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except (socket.timeout, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{dest.name} from {url}: the connection stalled "
                            f"(no data for {timeout:g} s)") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"{dest.name} from {url}: {reason or type(exc).__name__}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _amount(received: int, total: int | None) -> str:
    return f"{received} of {total} bytes arrived" if total is not None else f"{received} bytes arrived"


def _content_length(response) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and value.isdigit() else None


def _bar(name: str, total: int | None, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"downloading {name}", unit="B", unit_scale=True, leave=False)
