"""Reports made with worker processes (reports.parallel) are the reports one process makes:
the same frame, warnings, tables, text and figure files, byte for byte; a worker that dies or a
figure that cannot be sent costs time, never a result."""
from __future__ import annotations

import os
import re
import signal
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports import parallel  # noqa: E402
from reports.cli import main  # noqa: E402
from reports.parallel import Workers, default_jobs  # noqa: E402
from reports.scan import _shares, load_for_report  # noqa: E402
from reports.synthetic import SMALL_GRID, write_history  # noqa: E402
from reports.write import write_report  # noqa: E402

COMMITS = 20  # two shares of MIN_FILES_PER_SHARE files or more


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """A generated history whose second share holds a broken file and a file of another
    machine (a second machine.json)."""
    root = write_history(tmp_path_factory.mktemp("history"), commits=COMMITS, grid=SMALL_GRID)
    files = sorted((root / "synthetic").glob("*.json"))
    files = [f for f in files if f.name != "machine.json"]
    files[14].write_text("{ not json", encoding="utf-8")
    other = root / "zz-other"  # read after the synthetic machine's files
    other.mkdir()
    (other / "machine.json").write_text("{ nope", encoding="utf-8")  # a warning
    (other / files[3].name).write_bytes(files[3].read_bytes())
    return root


def _report(results: Path, out: Path, workers: Workers | None) -> tuple[pd.DataFrame, list]:
    loaded = load_for_report(results, "variance", workers=workers)
    if workers is not None:
        workers.restart()
    write_report(loaded, out, history_measure="variance", workers=workers)
    return loaded.frame, loaded.warnings


def _files(out: Path) -> dict[str, bytes]:
    got = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name != ".estibench-manifest":
            data = path.read_bytes()
            if path.suffix in (".md", ".html"):
                data = re.sub(rb"Generated [^\n<]*? UTC", b"Generated", data)
            got[str(path.relative_to(out))] = data
    return got


@pytest.fixture(scope="module")
def one_process(history, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "report"
    frame, warnings = _report(history, out, None)
    return frame, warnings, _files(out)


def test_two_processes_make_the_report_one_process_makes(history, one_process, tmp_path):
    frame, warnings, files = one_process
    assert any("skipped" in w for w in warnings) and any("machine.json" in w for w in warnings)
    with Workers(2) as workers:
        assert len(_shares(sorted(history.rglob("*-*.json")), workers.jobs)) == 2
        got_frame, got_warnings = _report(history, tmp_path / "report", workers)
        assert not workers.broken and workers.handed >= 2  # a share of files, figures
    pd.testing.assert_frame_equal(got_frame, frame)
    assert got_warnings == warnings
    got = _files(tmp_path / "report")
    assert got.keys() == files.keys() and any(k.endswith(".png") for k in got)
    assert [k for k in got if got[k] != files[k]] == []


def test_a_worker_that_dies_leaves_its_work_to_the_main_process(history, one_process,
                                                                 tmp_path):
    frame, warnings, files = one_process
    with Workers(2) as workers:
        workers.start()
        pid = workers.result(workers.submit(os.getpid))
        assert pid is not None and pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        loaded = load_for_report(history, "variance", workers=workers)
        assert workers.broken and workers.count == 0
        write_report(loaded, tmp_path / "report", history_measure="variance", workers=workers)
    pd.testing.assert_frame_equal(loaded.frame, frame)
    assert loaded.warnings == warnings
    assert _files(tmp_path / "report") == files


class _Failing(Workers):
    """Takes every figure and fails it, as a worker that dies mid-figure does."""

    def __init__(self):
        super().__init__(2)

    def free(self):
        return True

    def render(self, fig, formats):
        future = Future()
        future.set_exception(BrokenProcessPool("killed"))
        return future


def test_a_figure_a_worker_fails_is_drawn_by_the_main_process(history, one_process, tmp_path):
    *_, files = one_process
    loaded = load_for_report(history, "variance")
    with _Failing() as workers:
        write_report(loaded, tmp_path / "report", history_measure="variance", workers=workers)
        assert workers.broken
    assert _files(tmp_path / "report") == files


def test_a_figure_that_cannot_be_pickled_is_drawn_by_the_main_process():
    fig, ax = plt.subplots()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # a lambda: no pickle
    try:
        with Workers(2) as workers:
            assert workers.render(fig, ["png"]) is None
            ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:g}"))
            future = workers.render(fig, ["png", "svg"])
            encoded = workers.result(future)
        assert set(encoded) == {"png", "svg"} and encoded["png"].startswith(b"\x89PNG")
    finally:
        plt.close(fig)


def test_one_job_starts_no_worker():
    with Workers(1) as workers:
        assert workers.count == 0
        assert workers.submit(os.getpid) is None
        assert workers.render(None, ["png"]) is None
        workers.start()
        assert workers._pool is None


@pytest.mark.parametrize("files,processes,sizes", [
    (0, 2, []), (5, 2, [5]), (15, 2, [15]), (16, 2, [8, 8]), (17, 2, [8, 9]),
    (100, 3, [33, 34, 33]), (100, 1, [100]), (20, 4, [10, 10])])
def test_shares_cut_files_into_runs_in_order(files, processes, sizes):
    paths = [Path(f"{i:03d}.json") for i in range(files)]
    shares = _shares(paths, processes)
    assert [len(s) for s in shares] == sizes
    assert [p for s in shares for p in s] == paths
    assert all(len(s) >= parallel.MIN_FILES_PER_SHARE for s in shares[1:])


def test_jobs_come_from_the_environment_else_the_cores(monkeypatch):
    monkeypatch.setenv(parallel.JOBS_ENV, "3")
    assert default_jobs() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv(parallel.JOBS_ENV, bad)
        with pytest.raises(ValueError, match=rf"{parallel.JOBS_ENV}={bad!r}.*positive integer"):
            default_jobs()
    monkeypatch.delenv(parallel.JOBS_ENV)
    assert 1 <= default_jobs() <= min(parallel.MAX_JOBS, os.cpu_count() or 1)
    with pytest.raises(ValueError, match="jobs=0.*positive integer"):
        Workers(0)


def test_the_command_refuses_a_bad_jobs_count(monkeypatch, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--results", str(tmp_path), "--jobs", "0"])
    assert exit_.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err
    monkeypatch.setenv(parallel.JOBS_ENV, "none")
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "ESTIBENCH_JOBS='none'" in err and "positive integer" in err
