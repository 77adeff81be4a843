"""estibench: the command line and the two modules every part shares.

* :mod:`estibench.schema`: the results schema (tidy rows, the table of measures, verdict codes,
  run files), the only seam between the suite (``suite/``) and the reports (``reports/``);
* :mod:`estibench.settings`: one settings object (command-line flags, a config file and the
  ``ESTIBENCH_*`` variables), the only module that reads the environment;
* :mod:`estibench.cli`: ``estibench run | report | list | check | ...``, which composes them.
"""
