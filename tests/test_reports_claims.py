"""Issue 10 in the report: claims checked (tables/claims.csv, contradicted claims boxed at the
top), ties instead of orders, every estimator in every table, which run each cell came from,
units at a sensible precision. On tests/fixtures/asv_results_claims (a real narrowed run with a
synthesised biased plugin and two runs: its README)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from estibench import cli, schema
from reports import claims, tables
from reports import safe as units
from reports.load import load_results, read_tidy
from reports.select import display_names

FIXTURE = Path(__file__).parent / "fixtures" / "asv_results_claims"
OLD_FIXTURE = Path(__file__).parent / "fixtures" / "asv_results_before_details"


def raw(measure: str) -> dict:
    """(task, estimator, K, device) -> value of ``measure`` (or of the column ``measure`` on
    the claim-verdict rows: ``claims_unbiased``, ``run_started``), read from the run files."""
    out = {}
    for path in (FIXTURE / "runs").glob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            if row["group"] != "gradient" or row["status"] != "ok":
                continue
            key = (row["task"], row["estimator"], row["num_samples"], row["device"])
            if row["measure"] == measure:
                out[key] = row["value"]
            elif measure in row and row["measure"] == "claim_verdict":
                out[key] = row[measure]
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims") / "r"
    assert cli.main(["report", "-q", "--results", str(FIXTURE), "--out", str(out)]) == 0
    return out


def test_claims_csv_holds_every_verdict_of_the_results(report):
    table = pd.read_csv(report / "tables" / "claims.csv")
    for col in ("estimator", "task", "num_samples", "device", "claim", "verdict",
                "detectable_bias", "bias_p", "bias_target", "run_started"):
        assert col in table.columns
    verdicts, claimed = raw("claim_verdict"), raw("claims_unbiased")
    assert len(table) == len(verdicts) > 0
    words = {1.0: "consistent", 0.0: "inconclusive", -1.0: "contradicted"}
    for row in table.to_dict("records"):
        key = (row["task"], row["estimator"], row["num_samples"], row["device"])
        assert row["verdict"] == words[verdicts[key]]
        assert row["claim"] == ("unbiased" if claimed[key] else "none")
        assert row["detectable_bias"] == pytest.approx(raw("detectable_bias")[key])
    assert table["verdict"].iloc[0] == "contradicted"  # contradicted first
    bad = table[table["verdict"] == "contradicted"]
    assert set(bad["estimator"]) == {"biased_plugin"}
    assert not ((table["estimator"] == "disarm") & (table["verdict"] == "contradicted")).any()
    assert (table["bias_target"] == 0.1).all()


def test_contradicted_claims_are_boxed_at_the_top(report):
    md = (report / "report.md").read_text()
    box = md.index("> **⚠ Contradicted claims")
    assert box < md.index("## ")  # before the first section
    assert "> - biased_plugin claims to be unbiased; contradicted on " in md
    page = (report / "report.html").read_text()
    assert page.index('<div class="alert"') < page.index("<h2>")


def test_results_without_claims_have_no_verdicts(tmp_path):
    """Results written before the claim test (the older fixture): no claims table, no box."""
    assert cli.main(["report", "-q", "--results", str(OLD_FIXTURE), "--out",
                     str(tmp_path / "r")]) == 0
    assert not (tmp_path / "r" / "tables" / "claims.csv").exists()
    assert "Contradicted claims" not in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("verdict,p,d,claim", [
    (-1, 1e-9, 0.05, "unbiased"), (1, 0.5, 0.05, "unbiased"), (1, 1e-9, 0.05, "none"),
    (0, 0.5, 0.05, "none"), (0, 0.5, 0.5, "unknown")])
def test_the_claim_is_read_from_the_verdict_where_not_recorded(verdict, p, d, claim):
    row = {"verdict": claims.VERDICTS[verdict], "bias_p": p, "detectable_bias": d,
           "bias_target": 0.1}
    assert claims._claim(row) == claim


def test_claims_alpha_is_the_suites():
    from suite.claims import ALPHA

    assert claims.ALPHA == ALPHA


def test_runs_are_counted_and_every_cell_says_its_run(report, tmp_path):
    md = (report / "report.md").read_text()
    assert "2 run(s) contributed gradient cells" in md
    summary = pd.read_csv(report / "tables" / "run_summary.csv")
    assert len(summary) == 2 and summary["cells"].sum() == len(raw("run_started"))
    tidy = tmp_path / "tidy.csv"
    assert cli.main(["report", "-q", "--results", str(FIXTURE), "--out", str(tmp_path / "r"),
                     "--tidy", str(tidy)]) == 0
    frame = read_tidy(tidy)
    started = raw("run_started")
    grad = frame[(frame["group"] == "gradient") & (frame["status"] == "ok")
                 & ~frame["measure"].isin(schema.ASV_MEASURED)]  # asv's: asv's start
    for row in grad.sample(50, random_state=0).to_dict("records"):
        key = (row["task"], row["estimator"], row["num_samples"], row["device"])
        assert row["run_started"].timestamp() == pytest.approx(started[key], abs=1e-6)


def test_an_estimator_exact_on_a_task_is_labelled_not_ranked(report):
    """DisARM is exact on bernoulli_t045 (p = 1/2: variance 0, no SNR, relative bias 2e-7 of rounding): it
    is listed as exact in its rows, never the best variance, bias or MSE; in the costs it competes."""
    frame = load_results(FIXTURE).frame
    assert raw("variance")[("bernoulli_t045", "disarm", 64, "cpu")] == 0
    assert raw("bias")[("bernoulli_t045", "disarm", 64, "cpu")] < 1e-5
    best = tables.best_estimators(frame).set_index(["task", "measure"])
    for measure in ("variance", "bias", "mse", "cosine", "work_normalised_variance"):
        row = best.loc[("bernoulli_t045", measure)]
        assert "disarm" not in row["best"] and row["exact"] == "disarm", (measure, row["best"])
    assert row["competitors"] == 3
    assert "disarm" in best.loc[("bernoulli_t045", "evaluations"), "best"] and \
        best.loc[("bernoulli_t045", "evaluations"), "exact"] == ""
    assert best.loc[("bernoulli20_nonseparable", "variance"), "exact"] == ""  # noisy there
    md = (report / "report.md").read_text()
    assert "exact (not ranked) |" in md and "| DisARM |" in md


def test_a_detected_bias_is_never_ranked_with_the_unbiased():
    """On bernoulli20_nonseparable the claim test detects biased_plugin's bias (p < ALPHA); its relative
    bias (about 0.5) must rank behind every estimator where none was detected, never tied with them, even
    were its interval to overlap theirs."""
    frame = load_results(FIXTURE).frame
    p = raw("bias_p")
    assert p[("bernoulli20_nonseparable", "biased_plugin", 64, "cpu")] < schema.ALPHA
    row = tables.best_estimators(frame).set_index(["task", "measure"]).loc[("bernoulli20_nonseparable", "bias")]
    assert "biased_plugin" not in row["best"] and row["runner_up"] == "biased_plugin"
    values = pd.Series({"unbiased": 0.0, "detected": 0.3, "other": 2.0})
    wide = tables._best_row(values, values - 1.0, values + 1.0, higher=False, behind={"detected"})
    assert wide["best"] == "tie: unbiased = other" and wide["runner_up"] == "detected"


def test_overlapping_intervals_are_a_tie():
    values = pd.Series({"a": 1.0, "b": 1.1, "c": 5.0})
    lo, hi = values - 0.2, values + 0.2
    row = tables._best_row(values, lo, hi, higher=False)
    assert row["best"] == "tie: a = b" and row["tied"] == 2 and row["distinct"] == "no"
    assert row["runner_up"] == "c" and row["ratio"] == pytest.approx(5.0)
    row = tables._best_row(values, values - 0.01, values + 0.01, higher=False)
    assert row["best"] == "a" and row["distinct"] == "yes" and row["runner_up"] == "b"


def test_the_reference_is_known_by_name_not_by_variance():
    assert tables.is_reference("exact") and tables.is_reference("exact:max_support=10")
    assert not tables.is_reference("disarm")


@pytest.mark.parametrize("value,unit,text", [
    (0.000123456, "seconds", "123 µs"), (0.0123, "seconds", "12.3 ms"), (2.5, "seconds", "2.50 s"),
    (52428800, "bytes", "50.0 MiB"), (0.0123456, "grad^2", "0.0123 grad²"), (64.0, "evaluations",
                                                                           "64 evaluations"),
    (0.51234, "relative", "0.512"), (math.nan, "seconds", "–")])
def test_quantities_carry_units_at_three_digits(value, unit, text):
    assert units.quantity(value, unit) == text


def test_html_shows_units(report):
    page = (report / "report.html").read_text()
    assert " µs</td>" in page and " MiB</td>" in page and " grad²</td>" in page


MINE = "Mïne estimator ★"


def test_a_declared_display_name_appears_in_every_table_and_figure(tmp_path):
    """The run files say how an estimator is shown (a plugin's declared ``display_name``): the
    report shows that name, never one of its own making, in its tables and figure legends."""
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results)
    for path in (results / "runs").glob("*.parquet"):
        frame = schema.read_run(path)
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for row in rows:
            if row["estimator"] == "biased_plugin":
                row["estimator_name"] = MINE
        schema.write_run(rows, results, path.stem)
    out = tmp_path / "r"
    assert cli.main(["report", "-q", "--results", str(results), "--out", str(out), "--format",
                     "png,svg"]) == 0
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert f"{MINE} claims to be unbiased" in md  # the contradicted-claims box
    assert md.count(MINE) >= 4 and page.count(MINE) >= 4  # coverage, claims, verdicts, best
    assert "biased plugin" not in md  # no name of the report's own making
    svgs = list((out / "figures").glob("*.svg"))
    assert svgs and all(MINE in p.read_text() for p in svgs)


def test_display_names_never_merge_two_estimators():
    frame = pd.DataFrame({"estimator": ["a", "b"], "estimator_name": ["same", "same"]})
    shown = display_names(frame)["estimator"]
    assert shown == {"a": "a", "b": "b"}


def test_tidy_csv_is_formula_free(tmp_path):
    from reports.load import write_tidy

    frame = pd.DataFrame({"estimator": ["=HYPERLINK(\"x\")", "disarm"], "value": [-1.5, 2.0]})
    write_tidy(frame, tmp_path / "t.csv")
    text = (tmp_path / "t.csv").read_text()
    assert "'=HYPERLINK" in text and "\n=" not in text and "-1.5" in text


def test_cost_figures_options_and_vector_text(tmp_path):
    """Variance and MSE against f evaluations and seconds; --tasks/--estimators choose panels,
    --per-task writes one file per task; SVG keeps its text as text."""
    out = tmp_path / "r"
    assert cli.main(["report", "-q", "--results", str(FIXTURE), "--out", str(out), "--format",
                     "png,svg", "--tasks", "bernoulli_t045", "--estimators",
                     "disarm,score_function:baseline=loo", "--per-task"]) == 0
    made = {p.stem for p in (out / "figures").glob("*.svg")}
    for name in ("variance_vs_evaluations", "variance_vs_seconds", "mse_vs_evaluations",
                 "mse_vs_seconds", "variance_vs_samples"):
        assert {name, f"{name}-bernoulli_t045"} <= made
    assert not any("bernoulli20" in n for n in made)
    svg = (out / "figures" / "variance_vs_evaluations.svg").read_text()
    assert "<text" in svg and "score function (LOO)" in svg and "DisARM" in svg
    assert "straight-through" not in svg and "Bernoulli, t = 0.45" in svg
    assert "f evaluations / estimate" in svg
