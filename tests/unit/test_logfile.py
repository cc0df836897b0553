"""RotatingLog (a model worker's log): no file passes the cap, old files shift .1 -> .2, the oldest is dropped,
and nothing written is lost from the files kept."""

from __future__ import annotations

from silnode.serving.logfile import RotatingLog


def files(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_rotates_at_the_cap_on_line_boundaries(tmp_path):
    path = tmp_path / "w.log"
    log = RotatingLog(path, max_bytes=100, backups=2)
    lines = [f"line {i:03d} ".ljust(29, "x").encode() + b"\n" for i in range(12)]  # 30 bytes each
    for line in lines:
        log.write(line)
    log.write(b"".join(lines[:4]))  # one write of 120 bytes: split after the lines that fit
    log.close()
    assert files(path) == ["w.log", "w.log.1", "w.log.2"]  # .3 was never made: two backups kept
    sizes = [p.stat().st_size for p in (path, path.with_name("w.log.1"), path.with_name("w.log.2"))]
    assert all(0 < s <= 100 for s in sizes), sizes
    kept = b"".join(path.with_name(n).read_bytes() for n in ("w.log.2", "w.log.1", "w.log"))
    assert (b"".join(lines) + b"".join(lines[:4])).endswith(kept)  # the newest bytes, in order
    assert all(p.read_bytes().endswith(b"\n") for p in tmp_path.iterdir())  # no line was cut


def test_a_line_longer_than_the_cap_is_cut(tmp_path):
    path = tmp_path / "w.log"
    log = RotatingLog(path, max_bytes=10, backups=5)
    log.write(b"a" * 25)
    log.close()
    assert [path.with_name(n).read_bytes() for n in ("w.log.2", "w.log.1", "w.log")] == [b"a" * 10, b"a" * 10, b"a" * 5]


def test_no_backups_starts_the_file_again_and_a_reopen_counts_what_is_there(tmp_path):
    path = tmp_path / "w.log"
    path.write_bytes(b"x" * 8)
    log = RotatingLog(path, max_bytes=10, backups=0)
    assert log.size == 8
    log.write(b"yyy\n")
    log.close()
    assert files(path) == ["w.log"] and path.read_bytes() == b"yyy\n"
