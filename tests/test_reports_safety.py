"""Regression tests for issue 13 (items 1 and 6) and hostile names: the report's output folder is
written whole or not at all and only what a report wrote is replaced; one malformed result file
never aborts the report; names from result files come out inert."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from estibench import cli  # noqa: E402
from reports import write  # noqa: E402
from reports.load import load_results  # noqa: E402
from reports.safe import csv_cell, md_text, slug  # noqa: E402

COLUMNS = ["result", "params", "version", "started_at", "duration"]


def result_file(machine="m", tasks=("t",), estimators=("a", "b"), values=None, **extra):
    """A small asv results file of one gradient benchmark (asv's time and peak memory of an estimate)."""
    params = [[repr(t) for t in tasks], [repr(e) for e in estimators], ["1", "4"], ["'cpu'"]]
    n = len(tasks) * len(estimators) * 2
    vals = values if values is not None else [0.5 / (1 + i % 4) for i in range(n)]
    data = {"commit_hash": "abcdef0123456789", "env_name": "env", "date": 1795596079000,
            "params": {"machine": machine}, "result_columns": COLUMNS, "version": 2,
            "results": {
                "bench_gradients.CostX.time_estimate": [vals, params, "v", 1795596420647, 1.0],
                "bench_gradients.CostX.peakmem_estimate": [[v * 1e6 for v in vals], params,
                                                           "v", 1795596420647, 1.0]}}
    data.update(extra)
    return data


BENCHMARKS = {f"bench_gradients.CostX.{m}": {
    "param_names": ["task", "estimator", "num_samples", "device"], "type": kind,
    "unit": unit} for m, kind, unit in (("time_estimate", "time", "seconds"),
                                         ("peakmem_estimate", "peakmemory", "bytes"))}


def write_results(root: Path, files: dict[str, object]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmarks.json").write_text(json.dumps(BENCHMARKS))
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return root


def report(results: Path, out: Path, capsys=None):
    code = cli.main(["report", "-q", "--results", str(results), "--out", str(out),
                     "--history", "time_estimate"])
    err = capsys.readouterr().err if capsys else ""
    return code, err


@pytest.fixture
def good(tmp_path):
    return write_results(tmp_path / "results", {"m/good-env.json": result_file()})


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# -- item 1: the output folder -----------------------------------------------------------------
def test_foreign_files_survive_and_stale_report_files_go(good, tmp_path, capsys):
    out = tmp_path / "out"
    for rel in ("notes.txt", "figures/mine.png", "figures/mine.svg", "tables/mine.csv"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(f"foreign {rel}")
    assert report(good, out, capsys)[0] == 0
    manifest = json.loads((out / write.MANIFEST).read_text())["files"]
    assert "report.md" in manifest and any(f.startswith("figures/") for f in manifest)
    for rel in ("notes.txt", "figures/mine.png", "figures/mine.svg", "tables/mine.csv"):
        assert (out / rel).read_text() == f"foreign {rel}"  # before: deleted
    # a file the last report wrote, and this one does not: removed; foreign ones stay
    stale = out / "figures" / "old_figure.png"
    stale.write_text("x")
    man = json.loads((out / write.MANIFEST).read_text())
    man["files"].append("figures/old_figure.png")
    (out / write.MANIFEST).write_text(json.dumps(man))
    assert report(good, out, capsys)[0] == 0
    assert not stale.exists()
    assert (out / "figures" / "mine.png").read_text() == "foreign figures/mine.png"
    assert not [p for p in tmp_path.iterdir() if ".estibench-" in p.name]  # staging removed


def test_a_manifest_never_reaches_outside_the_report(good, tmp_path, capsys):
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "figures").mkdir(parents=True)
    (out / "keep.txt").write_text("keep")
    (out / write.MANIFEST).write_text(json.dumps(
        {"files": ["../victim.txt", "/etc/passwd", "keep.txt", "figures/../keep.txt"]}))
    code, err = report(good, out, capsys)
    assert code == 0 and "left alone" in err
    assert victim.read_text() == "keep" and (out / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("sub", ["figures", "tables"])
def test_a_symlinked_subfolder_is_refused(good, tmp_path, capsys, sub):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.png").write_text("precious")
    (elsewhere / "precious.csv").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / sub).symlink_to(elsewhere, target_is_directory=True)
    code, err = report(good, out, capsys)
    assert code == 1
    assert f"{out / sub} is a symbolic link" in err and "Traceback" not in err
    assert tree(elsewhere) == {"precious.png": b"precious", "precious.csv": b"precious"}
    assert not (out / "report.md").exists()


def test_a_failed_move_leaves_the_previous_report_intact(good, tmp_path, capsys, monkeypatch):
    """A read-only tables/ (simulated: tests may run as root, which ignores permissions):
    nothing of the new report lands, the old one is as it was, and the error says so."""
    out = tmp_path / "out"
    assert report(good, out, capsys)[0] == 0
    (out / "figures" / "foreign.png").write_text("foreign")
    before = tree(out)
    real = os.replace

    def refuse_tables(src, dst, *a, **k):  # no entry may be added to or removed from tables/
        if out / "tables" in (Path(src).parent, Path(dst).parent):
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(write.os, "replace", refuse_tables)
    code, err = report(good, out, capsys)
    assert code == 1
    assert "could not write the report" in err and "previous report is left as it was" in err
    assert tree(out) == before
    assert not [p for p in tmp_path.iterdir() if ".estibench-" in p.name]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_tables_folder_is_a_clear_error(good, tmp_path, capsys):
    out = tmp_path / "out"
    assert report(good, out, capsys)[0] == 0
    before = tree(out)
    (out / "tables").chmod(0o555)
    try:
        code, err = report(good, out, capsys)
    finally:
        (out / "tables").chmod(0o755)
    assert code == 1 and f"cannot write into {out / 'tables'}" in err
    assert tree(out) == before


def test_a_foreign_file_in_the_way_is_kept_beside(good, tmp_path, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "report.md").write_text("my own notes")
    code, err = report(good, out, capsys)
    assert code == 0
    assert (out / "report.kept-1.md").read_text() == "my own notes"
    assert "was not written by a report" in err
    assert (out / "report.md").read_text().startswith("# estibench report")


# -- item 6: malformed result files --------------------------------------------------------------
MALFORMED = {
    "deep.json": "[" * 100_000 + "]" * 100_000,  # RecursionError in json
    "machine_not_text.json": result_file(params={"machine": {"a": 1}}),
    "machine_list.json": result_file(params={"machine": [1, 2]}),
    "params_not_dict.json": result_file(params=["x"]),
    "not_a_dict.json": [1, 2, 3],
    "truncated.json": json.dumps(result_file())[:200],
    "wrong_length.json": result_file(values=[1.0, 2.0]),
    "results_list.json": result_file(results=[1, 2]),
    "columns_not_list.json": result_file(result_columns="result"),
    "params_not_lists.json": result_file(results={"b.Q.time_x": [[1.0], [1, 2], "v", 0, 1]}),
    "huge_grid.json": result_file(results={"b.Q.time_x": [None, [["1"] * 100] * 10, "v", 0, 1]}),
    "date_text.json": result_file(date="yesterday"),
    "commit_dict.json": result_file(commit_hash={"x": 1}),
    "not_utf8.json": "\udcff",
    "empty.json": "",
    "version_1.json": result_file(version=1),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_one_malformed_file_is_skipped_with_a_warning_naming_it(tmp_path, capsys, name):
    content = MALFORMED[name]
    results = write_results(tmp_path / "results", {"m/good-env.json": result_file()})
    path = results / "m" / name
    if content == "\udcff":
        path.write_bytes(b"\xff\xfe{")
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    loaded = load_results(results)
    assert any(str(path) in w for w in loaded.warnings), loaded.warnings
    assert set(loaded.frame["machine"]) == {"m"} and len(loaded.files) == 1
    code, err = report(results, tmp_path / "out", capsys)
    assert code == 0 and str(path) in err and "Traceback" not in err
    assert (tmp_path / "out" / "report.md").is_file()


def test_malformed_benchmarks_and_machine_json_are_warnings(tmp_path, capsys):
    results = write_results(tmp_path / "results", {"m/good-env.json": result_file()})
    (results / "benchmarks.json").write_text("[" * 100_000)
    (results / "m" / "machine.json").write_text("{" * 100_000)
    loaded = load_results(results)
    assert len(loaded.files) == 1
    assert any("benchmarks.json" in w for w in loaded.warnings)
    assert any("machine.json" in w for w in loaded.warnings)


# -- hostile names -----------------------------------------------------------------------------
HOSTILE = ["<script>alert(1)</script>", "a|b\nc", "`rm -rf`", "=cmd|' /C calc'!A0",
           "../../etc/passwd", "$\\frac{$", "<img src=x onerror=alert(1)>"]


def test_hostile_names_come_out_inert(tmp_path, capsys):
    results = write_results(tmp_path / "results", {
        "m/good-env.json": result_file(machine="<b>m</b>|x", tasks=HOSTILE[:4],
                                       estimators=HOSTILE[3:])})
    out = tmp_path / "out"
    code, err = report(results, out, capsys)
    assert code == 0, err
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for bad in ("<script>", "<img src=x", "<b>m"):
        assert bad not in html
    assert not re.search(r"(?<!\\)[<>`]", md)  # every <, > and backtick escaped in Markdown
    assert "&lt;script&gt;" in html
    for table in _md_tables(md):  # every row has as many cells as its header
        assert len({row.replace("\\|", "").count("|") for row in table}) == 1, table
    for csv in (out / "tables").glob("*.csv"):
        for cell in csv.read_text().replace("\n", ",").split(","):
            assert not cell.strip('"').startswith(("=", "@", "+")), (csv.name, cell)
    for path in out.rglob("*"):  # nothing outside out, no odd names
        assert path.resolve().is_relative_to(out.resolve())
    assert not (tmp_path / "etc").exists()


def _md_tables(md: str) -> list[list[str]]:
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.parametrize("name", HOSTILE + ["", ".", "..", "a" * 400, "é/../x"])
def test_file_names_stay_in_their_folder(name, tmp_path):
    stem = slug(name)
    assert stem and stem not in (".", "..") and "/" not in stem and len(stem) <= 100
    assert (tmp_path / f"{stem}.png").resolve().parent == tmp_path.resolve()


def test_escapers():
    assert csv_cell("=1+2") == "'=1+2" and csv_cell("-1.5") == "-1.5" and csv_cell("a") == "a"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell(3) == 3
    assert md_text("a|b\nc") == "a\\|b c" and md_text("<x>") == "\\<x\\>"
