"""Report sections of issue 10: the claims (a box of contradicted claims at the top, verdict
counts, the claims table), the runs that contributed, and tables of quantities with units."""
from __future__ import annotations

import math

import pandas as pd

from . import claims as C
from .blocks import Alert, FigureBlock, Heading, Para, Report, Table
from .landscape import landscape_figures, landscape_tables
from .units import quantity

__all__ = ["claims_alert", "claims_section", "runs_section", "with_units", "display_best"]

_MAX_CLAIMS_LISTED = 80


def claims_alert(report: Report, claims: pd.DataFrame) -> None:
    """The box of contradicted claims (right under the title), or one line saying none was."""
    if claims.empty:
        return
    bad = C.contradicted_items(claims)
    if bad:
        report.add(Alert(f"Contradicted claims: {len(bad)} estimator/task pair(s)", bad,
                         "These estimators claim E[ĝ] = g and the claim test rejects it at "
                         f"false-alarm rate {C.ALPHA:g} (see Claims; tables/claims.csv)."))
    else:
        counts = claims["verdict"].value_counts()
        report.add(Para(f"No claim contradicted: {len(claims)} cell(s) tested, "
                        f"{counts.get('consistent', 0)} consistent, "
                        f"{counts.get('inconclusive', 0)} inconclusive (see Claims)."))


def claims_section(report: Report, claims: pd.DataFrame) -> None:
    if claims.empty:
        return
    report.add(Heading("Claims"), Para(
        "Each cell tests its estimator's registered claim. claim unbiased: contradicted when "
        f"the test of E[ĝ] = g rejects at false-alarm rate {C.ALPHA:g}; consistent when it "
        "does not and the detectable bias (the smallest relative bias it detects with 95 % "
        "power) reached the task's target; inconclusive otherwise. claim none (a biased "
        "estimator): consistent when a bias was detected, inconclusive otherwise."),
        Table(C.verdict_counts(claims), "Cells per verdict, by estimator and claim."))
    shown = claims.head(_MAX_CLAIMS_LISTED).drop(columns=["machine", "commit"])
    shown = shown.rename(columns={"num_samples": "K", "detectable_bias": "detectable bias",
                                  "bias_target": "target", "target_reached": "reached",
                                  "bias_p": "p", "bias_z": "z", "replicates": "R",
                                  "run_started": "run"})
    more = f" (first {len(shown)} of {len(claims)}; all in tables/claims.csv)" \
        if len(shown) < len(claims) else " (also tables/claims.csv)"
    report.add(Table(shown, "Claim test per cell, contradicted first; detectable bias and "
                            f"target are relative biases; run: when the run that measured the "
                            f"cell started{more}."))


def runs_section(report: Report, summary: pd.DataFrame) -> pd.DataFrame:
    """The runs that measured the gradient cells (:func:`reports.tables.run_summary`; results
    accumulate across narrowed runs)."""
    if summary.empty:
        return summary
    n = len(summary)
    shown = summary.assign(commit=summary["commit"].astype(str).str[:8])
    report.add(Para(f"{n} run(s) contributed gradient cells: narrowed runs on one commit add to "
                    f"its results, and each cell keeps the start time of the run that measured "
                    f"it (column run_started of the tidy table)."),
               Table(shown, "Runs: when each started and what it measured."))
    return summary


def with_units(frame: pd.DataFrame, columns: list[str], unit_of) -> pd.DataFrame:
    """``columns`` as text with their units (:func:`reports.units.quantity`); ``unit_of`` gives a
    row's asv unit."""
    out = frame.copy()
    for col in columns:
        if col in out:
            out[col] = [quantity(v, unit_of(r)) for v, r in zip(out[col], frame.to_dict(
                "records"))]
    return out


def display_best(best: pd.DataFrame) -> pd.DataFrame:
    """A best-estimator/method table for people: values with units, the ratio as "×1.23"."""
    shown = best.copy()
    shown["ratio"] = [("–" if not (isinstance(r, float) and math.isfinite(r))
                       else f"×{r:.2f}" if r < 10 else f"×{r:.3g}") for r in best["ratio"]]
    if "unit" in shown:
        shown = with_units(shown, ["value", "runner_up_value", "reference"],
                           lambda r: r.get("unit"))
        shown = shown.drop(columns=["unit"])
        if "reference" in shown and (shown["reference"] == "–").all():
            shown = shown.drop(columns=["reference"])
    shown = shown.drop(columns=[c for c in ("competitors",) if c in shown])
    return shown.rename(columns={
        "num_samples": "K", "runner_up": "runner-up", "runner_up_value": "runner-up value",
        "ratio": "margin", "better": "better is"})


def landscape_section(report, frame: pd.DataFrame) -> None:
    """The landscape probes (clipping, BatchNorm, initialisation): their tables and figures, when
    the results have them."""
    found = landscape_tables(frame)
    figures = landscape_figures(frame, report.skipped)
    if not found and not figures:
        return
    report.add(Heading("Landscape probes"), Para(
        "Why clipping, BatchNorm and initialisation work, measured like the estimators "
        "(suite/landscape.py): largest stable learning rates, the fitted (L0, L1) of "
        "smoothness <= L0 + L1 ||g|| (Zhang et al. 2020), and norms through depth; mean ± se "
        "over seeds."))
    captions = {"landscape_largest_lr": "Largest stable learning rate per experiment and setting.",
                "landscape_smoothness_fit": "Fitted (L0, L1) and the rank correlation of "
                                            "smoothness with the gradient norm.",
                "landscape_init_depth": "Activation and gradient norms at the deepest layer."}
    for name, table in found.items():
        report.tables[name] = table
        report.add(Table(table, captions.get(name, name)))
    report.figures.extend(figures)
    report.add(*(FigureBlock(f) for f in figures))
