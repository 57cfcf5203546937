"""``persona bench reliability``: the reliability suite at full size, its figures as JSON.

The suite lives in ``tests/reliability/`` (a source checkout): the same tests that run briefly
in CI run here with their long sizes (``PERSONA_RELIABILITY=long``: 8 threads x 1,000
operations, 4 processes x 1,000, 120 SIGKILL trials, 400 state-machine runs, 20x the fuzzing
inputs) and write what they measured to one JSON file. One code path for both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from persona.errors import InvalidInputError


def suite_dir() -> Path:
    """``tests/reliability`` of the checkout this package was installed from (editable)."""
    here = Path(__file__).resolve().parents[2] / "tests" / "reliability"
    if not here.is_dir():
        raise InvalidInputError(
            f"the reliability suite is not at {here}; run this command from a source checkout "
            "installed with `pip install -e .` (make install does)."
        )
    return here


def run_reliability(out_file: Path, *, long: bool = True, select: str | None = None) -> int:
    """Run the suite; returns pytest's exit code. Figures go to ``out_file``."""
    suite = suite_dir()
    env = dict(os.environ)
    env["PERSONA_RELIABILITY"] = "long" if long else "short"
    env["PERSONA_RELIABILITY_OUT"] = str(out_file.resolve())
    env["PERSONA_RELIABILITY_COMMAND"] = " ".join(
        [
            "persona bench reliability",
            *(["--short"] if not long else []),
            *(["-k", select] if select else []),
        ]
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)]
    if select:
        cmd += ["-k", select]
    return subprocess.call(cmd, cwd=suite.parents[1], env=env)
