"""Downloads: a stalled server times out, corrupt bytes are retried once, nothing half-written stays."""
import hashlib
import io
import socket
import threading
import time

import pytest

from conftest import write_fake_mnist
from contrastive_lab.data import DatasetUnavailable, load_real_dataset
from contrastive_lab.data.download import DownloadError, download_file

GOOD = b"the real file" * 100
GOOD_MD5 = hashlib.md5(GOOD).hexdigest()


class Response(io.BytesIO):
    headers = {}


def opener_serving(*payloads):
    """An opener that answers each call with the next payload."""
    calls = []

    def opener(url, timeout):
        calls.append(timeout)
        return Response(payloads[min(len(calls), len(payloads)) - 1])
    opener.calls = calls
    return opener


def test_good_file_arrives_whole(tmp_path):
    opener = opener_serving(GOOD)
    path = download_file("http://x/f.bin", tmp_path / "f.bin", GOOD_MD5, timeout=3, opener=opener, progress=False)
    assert path.read_bytes() == GOOD and opener.calls == [3]


def test_corrupt_bytes_are_deleted_and_fetched_once_more(tmp_path):
    opener = opener_serving(b"garbage", GOOD)
    download_file("http://x/f.bin", tmp_path / "f.bin", GOOD_MD5, opener=opener, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == GOOD and len(opener.calls) == 2


def test_corrupt_twice_gives_up_and_leaves_nothing(tmp_path):
    opener = opener_serving(b"garbage", b"garbage again")
    with pytest.raises(DownloadError, match="f.bin from http://x/f.bin: checksum mismatch after 2 tries"):
        download_file("http://x/f.bin", tmp_path / "f.bin", GOOD_MD5, opener=opener, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def stalled_server():
    """A server on the loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/cifar-10-python.tar.gz"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_stalled_connection_times_out_with_one_line(tmp_path, stalled_server):
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="stalled \\(no data for 0.5 s\\)"):
        download_file(stalled_server, tmp_path / "c.tar.gz", None, timeout=0.5, progress=False)
    assert time.perf_counter() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_dataset_download_names_the_file_and_how_to_fetch_it(tmp_path, stalled_server, monkeypatch):
    from contrastive_lab.data import real

    monkeypatch.setattr(real, "CIFAR10_URL", stalled_server)
    with pytest.raises(DatasetUnavailable) as info:
        load_real_dataset("cifar10", root=tmp_path, fetch=lambda tmp: real._fetch_cifar10(tmp, timeout=0.5))
    message = str(info.value)
    assert "could not download cifar10" in message and "cifar-10-python.tar.gz" in message
    assert "stalled" in message and "To fetch it by hand" in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_cache_is_downloaded_again(tmp_path, capsys):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    x, _ = load_real_dataset("mnist", root=tmp_path, fetch=write_fake_mnist)
    assert x.shape[0] == 5
    assert "unreadable" in capsys.readouterr().out


# ---------------------------------------------------------------- a deadline, the announced length
@pytest.fixture
def trickling_server():
    """A local HTTP server that announces 200 bytes and sends one every 0.2 s."""
    import http.server

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "200")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass                                   # the client gave up

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/f.bin"
    server.shutdown()
    server.server_close()


def test_a_trickling_download_stops_at_its_deadline(tmp_path, trickling_server):
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="f.bin from .*: not complete after the 1.5 s allowed "
                                            "\\(\\d+ of 200 bytes arrived\\)"):
        download_file(trickling_server, tmp_path / "f.bin", None, timeout=10, deadline=1.5, progress=False)
    assert time.perf_counter() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_a_trickle_slower_than_the_minimum_rate_counts_as_stalled(tmp_path, trickling_server):
    start = time.perf_counter()
    with pytest.raises(DownloadError, match="the connection stalled \\(only \\d+ bytes in 1 s\\)"):
        download_file(trickling_server, tmp_path / "f.bin", None, timeout=1, progress=False)
    assert time.perf_counter() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_a_body_shorter_than_announced_is_not_kept(tmp_path):
    class Short(io.BytesIO):
        headers = {"Content-Length": "100"}

    with pytest.raises(DownloadError, match="f.bin from http://x/f.bin: the connection closed early "
                                            "\\(2 of 100 bytes arrived\\)"):
        download_file("http://x/f.bin", tmp_path / "f.bin", None, opener=lambda url, timeout: Short(b"ab"),
                      progress=False)
    assert list(tmp_path.iterdir()) == []
