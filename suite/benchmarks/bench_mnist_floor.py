"""asv benchmark: the training-step floor of the literature-scale discrete VAE (issue 23).

``MNISTTrainingFloor.track_floor_ratio`` (num_samples): one training step of
``binary_vae_mnist_linear`` (784 -> 200 Bernoulli latents -> 784, batch 50) with
``score_function:baseline=loo`` (the suite's step: estimator object, ``torch.distributions``,
the f-evaluation counter, Adam and the prior's SGD) over the same step written in plain torch
(:func:`suite.mnist_models.plain_loo_step`), on the same batches, measured interleaved in one
process and summarised by the median of the per-pair ratios
(:func:`suite.train_mnist_vae.floor_step_ratio`, as :mod:`suite.floor` does for single
estimates). The target is at most 1.15. Measured once per asv run in ``setup_cache``, which also
writes the numbers (ratio and both medians) to the run's ``mnist-floor`` run file. CPU; no torch
work at import.
"""
from __future__ import annotations

import time

from estibench.schema import MEASURES

#: the K (f evaluations per image and step) the floor is measured at
NUM_SAMPLES = [2, 4]
#: the ratio the suite's step must stay under
TARGET = 1.15


class MNISTTrainingFloor:
    param_names = ["num_samples"]
    params = [NUM_SAMPLES]
    timeout = 600

    def setup_cache(self):
        from estibench.settings import current
        from suite import results
        from suite.benchutil import set_threads
        from suite.train_mnist_vae import floor_step_ratio

        started, settings = time.time(), current()
        set_threads(settings)
        out, rows = {}, []
        for k in NUM_SAMPLES:
            params = {"task": "binary_vae_mnist_linear",
                      "estimator": "score_function:baseline=loo", "num_samples": k,
                      "device": "cpu"}
            try:
                values = floor_step_ratio(num_samples=k)
            except Exception as exc:  # noqa: BLE001 - a failing measurement fails its cell
                out[k] = {"error": f"{type(exc).__name__}: {exc}"}
                rows.append(results.other_row("mnist_training_floor", params, "floor_ratio",
                                              None) | {"status": "failed",
                                                       "error": out[k]["error"]})
                continue
            out[k] = values
            rows.append(results.other_row("mnist_training_floor", params, "floor_ratio",
                                          values["ratio"]))
            for name in ("suite_seconds", "plain_seconds"):
                rows.append(results.other_row("mnist_training_floor", params,
                                              "seconds_per_update", values[name])
                            | {"experiment": f"mnist_training_floor_{name}"})
        results.write(rows, "mnist-floor", started, settings)
        return out

    setup_cache.timeout = 600

    def track_floor_ratio(self, cache, num_samples):
        cell = cache[num_samples]
        if "error" in cell:
            raise RuntimeError(cell["error"])
        return float(cell["ratio"])

    track_floor_ratio.unit = MEASURES["floor_ratio"].unit
