"""Adversarial tests of ``estibench report`` (issue 13), generated with hypothesis: result folders
holding one good file plus generated malformed or hostile files, and output folders holding
generated foreign files. Every run must complete for the good file, leave every foreign file as it
was, and write no raw hostile markup.

Cases per CI run (derandomized, so CI is deterministic): 12 result folders (each rendered into a
fresh output folder), 8 output-folder states, 60 escaper inputs.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_reports_safety import result_file, write_results  # noqa: E402

from estibench import cli  # noqa: E402
from reports.safe import csv_cell, html_text, md_text, slug  # noqa: E402

# no shrinking: a report per example is too slow to shrink; the failing example is printed as is
SETTINGS = dict(derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE_PARTS = ["<script>", "</td>", "|", "\n", "`", "=", "@", "+", "../", "$", "\\", "\"",
                 "'", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))", "\u202e", "#"]
hostile_text = st.lists(st.sampled_from(HOSTILE_PARTS) | st.text(max_size=4), min_size=1,
                        max_size=5).map("".join)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


@st.composite
def bad_files(draw) -> str:
    """The text of one malformed or hostile result file."""
    kind = draw(st.sampled_from(["json", "truncated", "deep", "mutated", "hostile"]))
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "truncated":
        text = json.dumps(result_file())
        return text[:draw(st.integers(0, len(text) - 1))]
    if kind == "deep":
        depth = draw(st.integers(1_000, 60_000))
        return "[" * depth + "]" * draw(st.sampled_from([0, depth]))
    data = result_file()
    if kind == "mutated":  # one field replaced by anything
        key = draw(st.sampled_from(["params", "results", "result_columns", "date", "version",
                                    "commit_hash", "env_name"]))
        data[key] = draw(json_values)
        return json.dumps(data)
    return json.dumps(result_file(machine=draw(hostile_text),
                                  tasks=draw(st.lists(hostile_text, min_size=1, max_size=2,
                                                      unique=True)),
                                  estimators=draw(st.lists(hostile_text, min_size=1,
                                                           max_size=2, unique=True))))


def run_report(results: Path, out: Path) -> int:
    return cli.main(["report", "-q", "--results", str(results), "--out", str(out),
                     "--history", "time_estimate", "--format", "png"])


def check_inert(out: Path) -> None:
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert "<script>" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert not re.search(r"(?<!\\)[<>`]", md)
    ours = json.loads((out / ".estibench-manifest.json").read_text())["files"]
    for csv in [out / rel for rel in ours if rel.endswith(".csv")]:
        for line in csv.read_text().splitlines():
            for cell in line.split(","):
                assert not cell.lstrip('"').startswith(("=", "@", "+")), (csv.name, cell)
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())


@settings(max_examples=12, **SETTINGS)
@given(files=st.lists(bad_files(), min_size=1, max_size=3))
def test_bad_result_files_never_sink_the_report(files):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        contents = {"good/ok-env.json": result_file(machine="good")}
        contents.update({f"m{i}/bad-env.json": text for i, text in enumerate(files)})
        results = write_results(tmp / "results", contents)
        out = tmp / "out"
        assert run_report(results, out) == 0
        assert "good" in (out / "report.md").read_text()
        check_inert(out)


foreign_names = st.sampled_from(["report.md", "report.html", "notes.txt", "figures/x.png",
                                 "figures/time_vs_samples_cpu.png", "tables/mine.csv",
                                 "tables/best_estimators.csv", "figures/.hidden",
                                 ".estibench-manifest.json.tmp"])


@settings(max_examples=8, **SETTINGS)
@given(foreign=st.dictionaries(foreign_names, st.binary(max_size=20), max_size=5),
       runs=st.integers(1, 2), manifest=st.none() | json_values)
def test_foreign_files_survive_any_output_folder(foreign, runs, manifest):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = write_results(tmp / "results", {"m/ok-env.json": result_file()})
        out = tmp / "out"
        out.mkdir()
        for rel, data in foreign.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        if manifest is not None:
            (out / ".estibench-manifest.json").write_text(json.dumps(manifest))
        for _ in range(runs):
            assert run_report(results, out) == 0
        kept = {p.read_bytes() for p in out.rglob("*") if p.is_file()}
        for rel, data in foreign.items():  # at its place, or kept beside it (x.kept-1.png)
            assert (out / rel).is_file() and (out / rel).read_bytes() == data or data in kept
        check_inert(out)


@settings(max_examples=60, **SETTINGS)
@given(text=hostile_text)
def test_escapers_leave_nothing_live(text):
    assert "<" not in html_text(text) and ">" not in html_text(text)
    md = md_text(text)
    assert "\n" not in md and not re.search(r"(?<!\\)[<>`|\[\]$]", md)
    cell = csv_cell(text)
    assert not cell.startswith(("=", "+", "@", "\t", "\r")) or cell[0] == "'" or \
        re.fullmatch(r"[-+]?[\d.]+", cell)
    name = slug(text)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,100}", name)
