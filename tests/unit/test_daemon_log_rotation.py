"""The daemon log rotates at daemon.log_max_bytes, keeping daemon.log_backups old files; a background daemon's
stdout and stderr (opened on the log file: what C libraries and stray prints write) follow it to the new file,
so they cannot grow a renamed one without bound. Runs setup_logging in a real process whose fds 1 and 2 are
the log, as `silnode daemon start` makes them."""

from __future__ import annotations

import subprocess
import sys

LOG_MAX = 4096
SCRIPT = """
import logging, os, sys
from pathlib import Path
from silnode.config import load_config
from silnode.daemon import setup_logging
config = load_config(Path(sys.argv[1]), overrides={"daemon.log_max_bytes": int(sys.argv[2]), "daemon.log_backups": 2})
config.log_file.parent.mkdir(parents=True, exist_ok=True)
fd = os.open(config.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.dup2(fd, 1)
os.dup2(fd, 2)
setup_logging(config)
for i in range(300):
    logging.getLogger("t").info("line %03d %s", i, "x" * 40)
    os.write(2, b"stray stderr %03d\\n" % i)
"""


def test_the_daemon_log_and_its_stderr_rotate_together(tmp_path):
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-c", SCRIPT, str(home), str(LOG_MAX)], check=True, timeout=120)
    log = next(home.rglob("daemon.log"))
    kept = [log.with_name(f"daemon.log.{i}") for i in (2, 1)] + [log]
    assert all(p.exists() for p in kept) and not log.with_name("daemon.log.3").exists()
    for p in kept:
        # the handler rolls over before a record would pass the cap; one stray line may follow a record
        assert 0 < p.stat().st_size <= LOG_MAX + 64, (p, p.stat().st_size)
    current = log.read_text()
    assert "line 299" in current and "stray stderr 299" in current  # stderr follows the log to the new file
