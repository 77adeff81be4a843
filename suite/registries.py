"""Registries of the suite's tasks (same machinery and plugin route as the estimators')."""
from estimators.registry import Registry

#: gradient tasks: a (dist, f) pair plus a reference gradient; see suite/tasks.py
TASKS = Registry("task", group="estibench.tasks")
#: training tasks for metric alignment: see suite/train_*.py
TRAINING_TASKS = Registry("training task", group="estibench.training_tasks")
