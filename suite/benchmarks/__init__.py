"""estibench's asv benchmarks (asv's ``benchmark_dir``): ``bench_gradients`` (gradient quality and
cost per task, estimator, num_samples and device), ``bench_alignment`` (training tasks: metric
alignment) and ``bench_metrics`` (speed and tightness of the transport metrics). asv imports this
folder as the top-level package ``benchmarks`` and names each benchmark by its module inside it
(``bench_gradients.QualityBernoulli.track_variance``); the tests import it as
``suite.benchmarks``. Only benchmark modules live here: the tasks, models and training loops are
the library around it (:mod:`suite`), and the helpers these modules share are
:mod:`suite.benchutil`.

This file (asv needs one) tracks the size of the suite itself: what a full run costs grows with
the number of cells and runs, and these say by how much from one commit to the next.
"""
from suite import grid


class SuiteSize:
    """How much a full run of the suite (as narrowed by the ``ESTIBENCH_*`` variables) holds."""

    def track_gradient_cells(self):
        """(task, estimator, num_samples, device) cells of the gradient grid."""
        ks, present = len(grid.num_samples()), len(grid.devices())
        return float(sum(len(tasks) * len(specs) * ks * present
                         for tasks, specs in grid.families().values()))

    track_gradient_cells.unit = "cells"

    def track_training_runs(self):
        """(training task, method, seed) runs of the alignment benchmarks."""
        from suite.registries import TRAINING_TASKS
        return float(sum(len(task.methods) * len(task.seeds) for task in
                         map(TRAINING_TASKS.get, grid.training_task_names())))

    track_training_runs.unit = "runs"
