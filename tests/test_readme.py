"""The README is part of the interface: its example runs, and CI runs its test command."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README should show the contract in a runnable example"
    for block in blocks:
        if "@register(" in block:  # the registration example: run it under a scratch name
            block = block.replace('"my_estimator"', '"readme_example_estimator"')
        namespace: dict = {}
        try:
            exec(compile(block, "README.md", "exec"), namespace)
        finally:
            import estimators
            from suite.registries import TASKS
            estimators.ESTIMATORS.unregister("readme_example_estimator")
            TASKS.unregister("bernoulli_linear_cost")


def test_readme_task_example_has_the_right_reference():
    """The task example in the README is a correct task: its reference is the exact gradient."""
    import torch

    from suite.registries import TASKS
    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S)
                 if "register_task(" in b)
    try:
        exec(compile(block, "README.md", "exec"), {})
        task = TASKS.get("bernoulli_linear_cost")
        problem = task.problem(1, dtype=torch.float64)
        import estimators
        estimators.get("exact")(problem.dist, problem.f, 1).backward()
        assert torch.allclose(problem.flat_grad()[0], task.reference())
    finally:
        TASKS.unregister("bernoulli_linear_cost")


def test_ci_runs_the_readme_test_command():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_cmds = [b.strip() for b in bash_blocks if "pytest" in b]
    assert len(test_cmds) == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmds[0] in ci
