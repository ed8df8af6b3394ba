"""Files written whole: temporary names torch accepts, bad paths named early, killed writers' leftovers removed.

Each test is a case of the reliability probe (shared/reviews/reliability.md, row numbers in the names)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from contrastive_lab.atomic import check_writable, make_temp, remove_stale_temp_files, save_atomically


# ---------------------------------------------------------------- atomic writes
def test_rows_89_122_a_path_without_an_extension_is_written(tmp_path):
    save_atomically({"w": torch.ones(2)}, tmp_path / "ckpt")
    assert torch.load(tmp_path / "ckpt", weights_only=True)["w"].tolist() == [1.0, 1.0]
    assert os.listdir(tmp_path) == ["ckpt"]


def test_rows_88_124_a_folder_that_is_a_file_is_named_before_anything_is_written(tmp_path):
    (tmp_path / "enc.pt").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="enc.pt is a file, not a folder"):
        check_writable(tmp_path / "enc.pt" / "sub" / "c.pt")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        save_atomically({}, tmp_path / "enc.pt" / "sub.pt")


def test_row_123_a_path_that_is_a_folder_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder; give a file name"):
        check_writable(tmp_path, "checkpoint")


def test_a_file_written_atomically_has_the_permissions_of_a_plain_write(tmp_path):
    # mkstemp makes files private (0600): a checkpoint in a shared run folder was unreadable to the group
    save_atomically({}, tmp_path / "atomic.pt")
    (tmp_path / "plain.pt").write_bytes(b"")
    assert (tmp_path / "atomic.pt").stat().st_mode == (tmp_path / "plain.pt").stat().st_mode


def test_temporary_names_record_the_writer_and_keep_the_suffix(tmp_path):
    tmp = make_temp(tmp_path / "model.pt")
    assert tmp.name.startswith(f".tmp-p{os.getpid()}-h") and tmp.suffix == ".pt"
    assert make_temp(tmp_path / "ckpt").suffix == ".tmp"          # torch refuses a name that is all suffix


_KILLED_WRITER = """
import sys, time, torch
from contrastive_lab.atomic import save_atomically

def slow_save(obj, f):
    with open(f, "wb") as fh:
        fh.write(b"x" * 1000)
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)

torch.save = slow_save
save_atomically({}, sys.argv[1])
"""


def test_row_126_a_killed_save_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "checkpoint.pt"
    save_atomically({"epoch": 1}, target)
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
        assert len(temps) == 1
        assert remove_stale_temp_files(tmp_path) == []             # its writer is alive: kept
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert temps[0].exists()                                       # SIGKILL cannot clean up
    assert remove_stale_temp_files(tmp_path) == temps              # the writer is gone: removed
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    assert torch.load(target, weights_only=True) == {"epoch": 1}


def test_stale_temporaries_without_a_pid_go_by_age_and_other_files_stay(tmp_path):
    old_file, old_dir = tmp_path / ".tmp-abcd1234.pt", tmp_path / ".tmp-cifar-10-batches-py-xyz"
    fresh, mine = tmp_path / ".tmp-efgh5678.pt", tmp_path / "notes.tmp"
    old_dir.mkdir()
    (old_dir / "data_batch_1.part").write_bytes(b"x")
    for p in (old_file, fresh, mine):
        p.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for p in (old_file, old_dir, old_dir / "data_batch_1.part", mine):
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert sorted(p.name for p in remove_stale_temp_files(tmp_path)) == sorted([old_file.name, old_dir.name])
    assert sorted(os.listdir(tmp_path)) == sorted([fresh.name, mine.name])


def test_the_next_write_into_a_folder_removes_a_dead_writers_temporary(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    leftover = make_temp(tmp_path / "c.pt")
    leftover = leftover.rename(tmp_path / leftover.name.replace(f"-p{os.getpid()}-", f"-p{pid}-"))
    save_atomically({}, tmp_path / "other.pt")
    assert not leftover.exists()
