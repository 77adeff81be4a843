"""The claims table (every gradient cell's test of its estimator's unbiasedness claim), and ranking tables for
people. Per gradient cell the suite records ``claim_verdict`` (:data:`VERDICTS`), ``detectable_bias`` (the smallest
relative bias detected with 95 % power), ``bias_p``, ``bias_z`` and the registered claim ``claims_unbiased`` (1
unbiased, 0 none); per task ``bias_target``. Results without ``claims_unbiased``: the claim is read back from the
verdict (``suite.claims.verdict``): ``contradicted`` is only said of a claimed unbiasedness; ``consistent`` with p <
:data:`ALPHA`: a bias was found, which only an estimator claiming none is consistent with; ``inconclusive`` with the
target reached: none was found where none is claimed; else ``unknown``."""
from __future__ import annotations

import math

import pandas as pd

from estibench.schema import ALPHA, VERDICTS

from .blocks import Alert, Heading, Para, Report, Table
from .safe import quantity
from .select import each_latest, gradient_cells

__all__ = ["ALPHA", "VERDICTS", "COLUMNS", "NEEDS", "claims_table", "claims_alert", "claims_section", "display_best"]

_ORDER = {"contradicted": 0, "inconclusive": 1, "consistent": 2}
_MEASURES = ("claim_verdict", "detectable_bias", "bias_p", "bias_z", "replicates")
_MAX_LISTED = 80
#: the label columns the claims table reads beyond the identity (reports.load.BASE_COLUMNS)
NEEDS = ("claims_unbiased",)
COLUMNS = ["estimator", "task", "num_samples", "device", "claim", "verdict", "detectable_bias", "bias_target",
           "target_reached", "bias_p", "bias_z", "replicates", "run_started", "machine", "commit"]


def _claim(row: dict) -> str:
    if not pd.isna(flag := row.get("claims_unbiased", math.nan)):
        return "unbiased" if flag >= 0.5 else "none"
    verdict, p = row["verdict"], row.get("bias_p", math.nan)
    d, t = row.get("detectable_bias", math.nan), row.get("bias_target", math.nan)
    if verdict == "contradicted" or verdict == "consistent" and not pd.isna(p) and p >= ALPHA:
        return "unbiased"
    reached = not (pd.isna(d) or pd.isna(t)) and d <= t
    if verdict == "consistent" and not pd.isna(p) or verdict == "inconclusive" and reached:
        return "none"
    return "unknown"


def claims_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per gradient cell with a claim verdict (each machine's latest commit): claim, verdict, detectable
    bias against the task's target, p, z, R and when the cell's run started; contradicted claims first."""
    keys = ["machine", "commit", "task", "estimator", "num_samples", "device"]
    cells = gradient_cells(each_latest(frame[frame["group"] == "gradient"]))
    if cells.empty or not (cells["measure"] == "claim_verdict").any():
        return pd.DataFrame(columns=COLUMNS)
    wide = cells[cells["measure"].isin(_MEASURES)].pivot_table(index=keys, columns="measure", values="value",
                                                               aggfunc="last").reset_index()
    facts = cells[cells["measure"] == "claim_verdict"].groupby(keys, as_index=False).agg(
        claims_unbiased=("claims_unbiased", "max"), run_started=("run_started", "max"))
    targets = frame[(frame["measure"] == "bias_target") & (frame["status"] == "ok")].sort_values("date", kind="stable")
    targets = targets.groupby(["machine", "task"])["value"].last().rename("bias_target").reset_index()
    out = wide.dropna(subset=["claim_verdict"]).merge(facts, on=keys, how="left").merge(
        targets, on=["machine", "task"], how="left").reindex(columns=list(dict.fromkeys(
            [*keys, *_MEASURES, "bias_target", "claims_unbiased", "run_started"])))
    out["verdict"] = [VERDICTS.get(int(round(v)), "unknown") for v in out["claim_verdict"]]
    out["claim"] = [_claim(r) for r in out.to_dict("records")]
    out["target_reached"] = ["–" if pd.isna(d) or pd.isna(t) else ("yes" if d <= t else "no")
                             for d, t in zip(out["detectable_bias"], out["bias_target"])]
    out["run_started"] = out["run_started"].dt.floor("s")
    out["_o"] = out["verdict"].map(_ORDER).fillna(3)
    return out.sort_values(["_o", "estimator", "task", "num_samples", "device"], kind="stable")[COLUMNS].reset_index(
        drop=True)


def claims_alert(report: Report, claims: pd.DataFrame) -> None:
    """The box of contradicted claims, one line per (machine, estimator, task) with the K where it was, the
    smallest p and the detectable bias there (right under the title), or one line saying none was."""
    if claims.empty:
        return
    bad = [f"{est} claims to be unbiased; contradicted on {task} at K = "
           f"{', '.join(str(int(k)) for k in sorted(part['num_samples'].unique()))} (smallest p = "
           f"{part['bias_p'].min():.2g}; detectable relative bias ≤ {part['detectable_bias'].max():.2g}; machine "
           f"{machine})" for (machine, est, task), part in claims[claims["verdict"] == "contradicted"].groupby(
               ["machine", "estimator", "task"], sort=True)]
    counts = claims["verdict"].value_counts()
    report.add(Alert(f"Contradicted claims: {len(bad)} estimator/task pair(s)", bad, "These estimators claim "
                     f"E[ĝ] = g and the claim test rejects it at false-alarm rate {ALPHA:g} (see Claims; "
                     f"tables/claims.csv).") if bad else Para(
        f"No claim contradicted: {len(claims)} cell(s) tested, {counts.get('consistent', 0)} consistent, "
        f"{counts.get('inconclusive', 0)} inconclusive (see Claims)."))


def claims_section(report: Report, claims: pd.DataFrame) -> None:
    if claims.empty:
        return
    counts = claims.pivot_table(index=["estimator", "claim"], columns="verdict", values="task", aggfunc="size",
                                fill_value=0).reindex(columns=list(_ORDER), fill_value=0).reset_index()
    counts.columns.name = None
    report.add(Heading("Claims"), Para(
        "Each cell tests its estimator's registered claim. claim unbiased: contradicted when the test of "
        f"E[ĝ] = g rejects at false-alarm rate {ALPHA:g}; consistent when it does not and the detectable bias "
        "(the smallest relative bias it detects with 95 % power) reached the task's target; inconclusive "
        "otherwise. claim none (a biased estimator): consistent when a bias was detected, inconclusive "
        "otherwise."), Table(counts, "Cells per verdict, by estimator and claim."))
    shown = claims.head(_MAX_LISTED).drop(columns=["machine", "commit"]).rename(columns={
        "num_samples": "K", "detectable_bias": "detectable bias", "bias_target": "target", "target_reached":
        "reached", "bias_p": "p", "bias_z": "z", "replicates": "R", "run_started": "run"})
    more = f" (first {len(shown)} of {len(claims)}; all in tables/claims.csv)" if len(shown) < len(claims) \
        else " (also tables/claims.csv)"
    report.add(Table(shown, "Claim test per cell, contradicted first; detectable bias and target are relative "
                            f"biases; run: when the run that measured the cell started{more}."))


def display_best(best: pd.DataFrame) -> pd.DataFrame:
    """A best-estimator/method table for people: values with units, the ratio as "×1.23", columns that say
    nothing here (no reference, nothing at round-off) left out."""
    shown = best.assign(ratio=["–" if not (isinstance(r, float) and math.isfinite(r)) else f"×{r:.2f}" if r < 10
                               else f"×{r:.3g}" for r in best["ratio"]])
    if "unit" in shown:
        for col in ("value", "runner_up_value", "reference"):
            if col in shown:
                shown[col] = [quantity(v, u) for v, u in zip(shown[col], shown["unit"])]
        shown = shown.drop(columns=["unit"] + (["reference"] if "reference" in shown and (shown["reference"] == "–")
                                               .all() else []))
    empty = [c for c in ("exact", "deterministic") if c in shown and not shown[c].fillna("").astype(bool).any()]
    return shown.drop(columns=[c for c in ("competitors",) if c in shown] + empty).rename(columns={
        "num_samples": "K", "runner_up": "runner-up", "runner_up_value": "runner-up value", "ratio": "margin",
        "better": "better is", "exact": "exact (not ranked)", "deterministic": "deterministic (not ranked)"})
