"""estibench's benchmark library: the tasks the asv benchmarks run, and how they are measured.

* :mod:`suite.tasks` (gradient tasks with exact references), :mod:`suite.measure` (variance,
  bias, ... of R replicate estimates), :mod:`suite.training` (the training-task interface and the
  alignment measures) and the training tasks :mod:`suite.train_multilabel`,
  :mod:`suite.train_sequence`, :mod:`suite.train_vqvae`; their shared :mod:`suite.data` and
  :mod:`suite.checks`.
* :mod:`suite.grid` lays out and computes what the benchmarks track; :mod:`suite.benchutil`
  holds what the benchmark modules share.
* ``suite/benchmarks/`` holds the asv benchmark modules only (asv's ``benchmark_dir``; every file
  there defines benchmarks). It has no ``__init__.py``: asv imports it as the top-level
  package ``benchmarks``, the tests as ``suite.benchmarks``. The library does not import it, and
  needs no asv.

Importing the package registers the built-in gradient tasks and training tasks in
:mod:`suite.registries`; plugins add theirs through the entry-point groups ``estibench.tasks``
and ``estibench.training_tasks``. Nothing here runs torch work at import (asv's forkserver
forks from a parent that imported it).
"""
from . import tasks, train_mnist_vae, train_multilabel, train_sequence, train_vae, train_vqvae  # noqa: F401
