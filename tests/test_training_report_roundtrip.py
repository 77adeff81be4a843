"""A training task's run, written by the suite (suite.results) and read by the report (reports.load,
reports.select, reports.figures): the curves keep the update step of every checkpoint and the
cumulative f evaluations, so the training figures draw their step, seconds and f-evaluation panels.
(The test fixtures are older results with a ``step`` parameter; this is the run files' own layout.)"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt

from reports.figures import fig_training
from reports.load import load_results
from reports.select import latest_commit, training_curves
from reports.style import Styles
from reports.tables import training_tasks
from suite import results
from suite.registries import TRAINING_TASKS
from suite.training import summarise
from suite.training_grid import curve_measures


def test_a_suite_written_training_run_draws_every_training_panel(tmp_path):
    name, methods = "binary_vae_digits_linear", ("score_function:baseline=loo", "straight_through")
    task = TRAINING_TASKS.get(name, steps=6, num_checkpoints=3, eval_train=16, grad_batch=8,
                              grad_replicates=2)
    runs = {(m, 0): task.run(m, seed=0) for m in methods}
    entry = {"summary": summarise(runs, task.higher_is_better), "errors": {},
             "curves": {k: {int(p["step"]): dict(p) for p in r.checkpoints} for k, r in runs.items()},
             "final": {k: dict(r.final) for k, r in runs.items()}}
    rows = results.training_rows(name, task, entry, curve_measures(task))
    results.write(rows, f"training-{name}", time.time(), folder=tmp_path)
    frame = load_results(tmp_path).frame
    curves = training_curves(latest_commit(frame[frame["group"].isin(["summary", "final", "curve"])]))
    for method in methods:
        mine = curves[curves["method"] == method]
        assert list(mine["step"]) == task.schedule() and list(mine["checkpoint"]) == [0, 1, 2]
        assert list(mine["f_evaluations"]) == [p["f_evaluations"] for p in runs[(method, 0)].checkpoints]
    styles, tasks = Styles([list(methods)]), training_tasks(frame)
    both = fig_training(curves, styles, tasks)
    assert [ax.get_xlabel() for ax in both.fig.axes if ax.get_visible()] == [
        "update step", "training seconds [s]"]
    evaluations = fig_training(curves, styles, tasks, ("f_evaluations",))
    assert [ax.get_xlabel() for ax in evaluations.fig.axes if ax.get_visible()] == [
        "f evaluations per image"]
    plt.close("all")


def test_forty_methods_spread_over_the_palette_and_long_task_names_wrap():
    """A training figure shows ~40 methods in one legend: every colour is used at most twice (not one
    blue for a dozen), no two share both colour and marker, and a task's display name longer than a
    title line wraps instead of being cut."""
    names = [f"method{i}" for i in range(40)]
    styles = Styles([names], {"task": {"t": "binary VAE, MNIST, nonlinear (200 latents, K = 4)"}})
    colours = [styles.colour(n) for n in names]
    assert max(colours.count(c) for c in colours) == 2
    assert len({(styles.colour(n), styles.marker(n)) for n in names}) == 40
    assert styles.task("t") == "binary VAE, MNIST, nonlinear (200\nlatents, K = 4)"
