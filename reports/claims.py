"""The claims table: every gradient cell's test of its estimator's unbiasedness claim.

The suite (``suite/claims.py``, per gradient cell) records ``claim_verdict`` (1 consistent, 0 inconclusive, -1
contradicted), ``detectable_bias`` (the smallest relative bias detected with 95 % power), ``bias_p`` and
``bias_z``, with the registered claim in the row's ``claims_unbiased`` column (1 unbiased, 0 none); the
harness records each task's ``bias_target``. Verdicts appear only where the results hold them (results written
before the claim test have none).

Results written before ``claims_unbiased`` was recorded: the claim is read back from the verdict's semantics
(``suite.claims.verdict``): ``contradicted`` is only ever said of a claimed unbiasedness; ``consistent`` with
p < :data:`ALPHA` means a bias was found, which only an estimator claiming none is consistent with;
``inconclusive`` with the target reached means no bias was found where none is claimed. Any other cell's claim
is ``unknown``."""
from __future__ import annotations

import math

import pandas as pd

from estibench.schema import ALPHA, VERDICTS

from .blocks import Alert, FigureBlock, Heading, Para, Report, Table
from .landscape import landscape_figures, landscape_tables
from .safe import quantity
from .select import gradient_cells, latest_commit

__all__ = ["ALPHA", "VERDICTS", "COLUMNS", "NEEDS", "claims_table", "contradicted_items", "verdict_counts",
           "claims_alert", "claims_section", "runs_section", "with_units", "display_best"]

_ORDER = {"contradicted": 0, "inconclusive": 1, "consistent": 2}
_MEASURES = ("claim_verdict", "detectable_bias", "bias_p", "bias_z", "replicates")
#: the label columns the claims table reads beyond the identity (reports.load.BASE_COLUMNS)
NEEDS = ("claims_unbiased",)
COLUMNS = ["estimator", "task", "num_samples", "device", "claim", "verdict", "detectable_bias",
           "bias_target", "target_reached", "bias_p", "bias_z", "replicates", "run_started", "machine", "commit"]


def _claim(row: dict) -> str:
    flag = row.get("claims_unbiased", math.nan)
    if not _nan(flag):
        return "unbiased" if flag >= 0.5 else "none"
    verdict, p = row["verdict"], row.get("bias_p", math.nan)
    d, t = row.get("detectable_bias", math.nan), row.get("bias_target", math.nan)
    if verdict == "contradicted":
        return "unbiased"
    if verdict == "consistent" and not _nan(p):
        return "unbiased" if p >= ALPHA else "none"
    if verdict == "inconclusive" and not (_nan(d) or _nan(t)) and d <= t:
        return "none"
    return "unknown"


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def bias_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """(machine, task) -> the latest ``bias_target`` recorded for it."""
    rows = frame[(frame["measure"] == "bias_target") & (frame["status"] == "ok")]
    if rows.empty or "task" not in rows:
        return pd.DataFrame(columns=["machine", "task", "bias_target"])
    rows = rows.sort_values("date", kind="stable").groupby(["machine", "task"]).last()
    return rows["value"].rename("bias_target").reset_index()


def claims_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per gradient cell with a claim verdict (each machine's latest commit): the
    claim, the verdict, the detectable bias reached against the task's target, the test's p and
    z, R, and the run the cell came from; contradicted claims first."""
    parts = []
    for _machine, mframe in frame.groupby("machine", sort=True):
        grad = latest_commit(mframe[mframe["group"] == "gradient"])
        cells = gradient_cells(grad)
        if cells.empty or not (cells["measure"] == "claim_verdict").any():
            continue
        keys = ["machine", "commit", "task", "estimator", "num_samples", "device"]
        wide = cells[cells["measure"].isin(_MEASURES)].pivot_table(
            index=keys, columns="measure", values="value", aggfunc="last").reset_index()
        wide.columns.name = None
        wide = wide.dropna(subset=["claim_verdict"])
        facts = cells[cells["measure"] == "claim_verdict"].groupby(keys, as_index=False).agg(
            claims_unbiased=("claims_unbiased", "max"), run_started=("run_started", "max"))
        wide = wide.merge(facts, on=keys, how="left")
        parts.append(wide.merge(bias_targets(mframe), on=["machine", "task"], how="left"))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    for col in _MEASURES + ("bias_target", "claims_unbiased"):
        if col not in out:
            out[col] = math.nan
    out["verdict"] = [VERDICTS.get(int(round(v)), "unknown") for v in out["claim_verdict"]]
    out["claim"] = [_claim(r) for r in out.to_dict("records")]
    out["target_reached"] = ["–" if _nan(d) or _nan(t) else ("yes" if d <= t else "no")
        for d, t in zip(out["detectable_bias"], out["bias_target"])]
    out["run_started"] = out["run_started"].dt.floor("s")
    out["_o"] = out["verdict"].map(_ORDER).fillna(3)
    out = out.sort_values(["_o", "estimator", "task", "num_samples", "device"], kind="stable")
    return out[COLUMNS].reset_index(drop=True)


def contradicted_items(claims: pd.DataFrame) -> list[str]:
    """One line per (machine, estimator, task) with a contradicted claim: the K where it was,
    the smallest p and the detectable bias there."""
    bad = claims[claims["verdict"] == "contradicted"]
    items = []
    for (machine, est, task), part in bad.groupby(["machine", "estimator", "task"], sort=True):
        ks = ", ".join(str(int(k)) for k in sorted(part["num_samples"].unique()))
        p = part["bias_p"].min()
        d = part["detectable_bias"].max()
        items.append(f"{est} claims to be unbiased; contradicted on {task} at K = {ks} "
                     f"(smallest p = {p:.2g}; detectable relative bias ≤ {d:.2g}; " f"machine {machine})")
    return items


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and claim: how many cells got each verdict."""
    if claims.empty:
        return pd.DataFrame(columns=["estimator", "claim", *_ORDER])
    counts = claims.pivot_table(index=["estimator", "claim"], columns="verdict",
                                values="task", aggfunc="size", fill_value=0)
    for v in _ORDER:
        if v not in counts:
            counts[v] = 0
    out = counts[list(_ORDER)].reset_index()
    out.columns.name = None
    return out


_MAX_CLAIMS_LISTED = 80


def claims_alert(report: Report, claims: pd.DataFrame) -> None:
    """The box of contradicted claims (right under the title), or one line saying none was."""
    if claims.empty:
        return
    bad = contradicted_items(claims)
    if bad:
        report.add(Alert(f"Contradicted claims: {len(bad)} estimator/task pair(s)", bad,
                         "These estimators claim E[ĝ] = g and the claim test rejects it at "
                         f"false-alarm rate {ALPHA:g} (see Claims; tables/claims.csv)."))
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
        f"the test of E[ĝ] = g rejects at false-alarm rate {ALPHA:g}; consistent when it "
        "does not and the detectable bias (the smallest relative bias it detects with 95 % "
        "power) reached the task's target; inconclusive otherwise. claim none (a biased "
        "estimator): consistent when a bias was detected, inconclusive otherwise."),
        Table(verdict_counts(claims), "Cells per verdict, by estimator and claim."))
    shown = claims.head(_MAX_CLAIMS_LISTED).drop(columns=["machine", "commit"])
    shown = shown.rename(columns={"num_samples": "K", "detectable_bias": "detectable bias",
                                  "bias_target": "target", "target_reached": "reached",
                                  "bias_p": "p", "bias_z": "z", "replicates": "R", "run_started": "run"})
    more = f" (first {len(shown)} of {len(claims)}; all in tables/claims.csv)" \
        if len(shown) < len(claims) else " (also tables/claims.csv)"
    report.add(Table(shown, "Claim test per cell, contradicted first; detectable bias and "
                            f"target are relative biases; run: when the run that measured the " f"cell started{more}."))


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
    """``columns`` as text with their units (:func:`reports.safe.quantity`); ``unit_of`` gives a
    row's asv unit."""
    out = frame.copy()
    for col in columns:
        if col in out:
            out[col] = [quantity(v, unit_of(r)) for v, r in zip(out[col], frame.to_dict("records"))]
    return out


def display_best(best: pd.DataFrame) -> pd.DataFrame:
    """A best-estimator/method table for people: values with units, the ratio as "×1.23"."""
    shown = best.copy()
    shown["ratio"] = [("–" if not (isinstance(r, float) and math.isfinite(r))
                       else f"×{r:.2f}" if r < 10 else f"×{r:.3g}") for r in best["ratio"]]
    if "unit" in shown:
        shown = with_units(shown, ["value", "runner_up_value", "reference"], lambda r: r.get("unit"))
        shown = shown.drop(columns=["unit"])
        if "reference" in shown and (shown["reference"] == "–").all():
            shown = shown.drop(columns=["reference"])
    shown = shown.drop(columns=[c for c in ("competitors",) if c in shown])
    return shown.rename(columns={"num_samples": "K", "runner_up": "runner-up", "runner_up_value": "runner-up value",
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
        "smoothness <= L0 + L1 ||g|| (Zhang et al. 2020), and norms through depth; mean ± se " "over seeds."))
    captions = {"landscape_largest_lr": "Largest stable learning rate per experiment and setting.",
                "landscape_smoothness_fit": "Fitted (L0, L1) and the rank correlation of "
                                            "smoothness with the gradient norm.",
                "landscape_init_depth": "Activation and gradient norms at the deepest layer."}
    for name, table in found.items():
        report.tables[name] = table
        report.add(Table(table, captions.get(name, name)))
    report.figures.extend(figures)
    report.add(*(FigureBlock(f) for f in figures))
