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
            estimators.ESTIMATORS.unregister("readme_example_estimator")


def test_ci_runs_the_readme_test_command():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_cmds = [b.strip() for b in bash_blocks if "pytest" in b]
    assert len(test_cmds) == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmds[0] in ci
