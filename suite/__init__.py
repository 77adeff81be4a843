"""estibench's asv benchmarks and the tasks they run.

Importing the package registers the built-in gradient tasks (:mod:`suite.tasks`) and training
tasks (:mod:`suite.train_multilabel`, :mod:`suite.train_sequence`, :mod:`suite.train_vqvae`) in
:mod:`suite.registries`; plugins add theirs through the entry-point groups ``estibench.tasks``
and ``estibench.training_tasks``. Nothing here runs torch work at import (asv's forkserver
forks from a parent that imported it).
"""
from . import tasks, train_multilabel, train_sequence, train_vqvae  # noqa: F401
