"""The README's two set-up commands are the ones CI runs."""

from __future__ import annotations

import re

from conftest import REPO


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = [b for b in _bash_blocks(readme) if "pytest" in b and "pip install" in b]
    assert len(commands) == 1, "the README must carry exactly one test set-up command"
    assert commands[0] in ci.splitlines()


def test_readme_main_job_command_runs_the_demo():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    main_jobs = [b for b in _bash_blocks(readme) if "evaluation.run --methods all" in b and "pip install" in b]
    assert len(main_jobs) == 1, "the README must carry exactly one main-job set-up command"
    assert "--data" not in main_jobs[0]  # the built-in default: no dataset download
    assert "-m evaluation.run --methods all" in ci
