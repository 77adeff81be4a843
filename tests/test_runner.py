"""estibench run's process handling (estibench.runner; issue 21, items 2 and 8): one writer per
results folder, a child that does not outlive a killed parent, and exit codes in words."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from estibench.runner import LockBusy, describe_exit, results_lock


def _holder(folder, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from estibench.runner import results_lock
        with results_lock({str(folder)!r}):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_refuses_or_waits(tmp_path):
    proc = _holder(tmp_path, 2.0)
    try:
        with pytest.raises(LockBusy, match=f"pid {proc.pid}"):
            with results_lock(tmp_path, wait=False):
                pass
        said = []
        start = time.monotonic()
        with results_lock(tmp_path, wait=True, say=said.append):
            waited = time.monotonic() - start
        assert said and "waiting" in said[0] and waited > 0.5
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    proc = _holder(tmp_path, 60)
    proc.kill()
    proc.wait()
    with results_lock(tmp_path, wait=False):  # the kernel released it
        pass


def test_the_child_dies_with_a_killed_parent(tmp_path):
    marker = tmp_path / "child.pid"
    code = textwrap.dedent(f"""
        import sys
        from estibench.runner import run_child
        run_child([sys.executable, "-c",
                   "import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); "
                   "time.sleep(60)"], env=dict(__import__('os').environ))
    """)
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(marker.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    alive = True
    while alive and time.monotonic() < deadline:
        try:
            os.kill(child, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            alive = False
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the child outlived its SIGKILLed parent"


def test_exit_codes_in_words():
    assert describe_exit(0) is None
    assert "failed" in describe_exit(2)
    assert "SIGKILL" in describe_exit(-9)
    assert "exited with 247" in describe_exit(247)
