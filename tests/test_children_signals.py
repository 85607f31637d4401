"""The suite's children see Ctrl+C as they would on a terminal, even when the suite runs under nohup."""

from __future__ import annotations

import signal
import subprocess
import sys

PROBE = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"


def test_a_child_gets_python_s_ctrl_c_handler() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_a_suite_launched_with_sigint_ignored_still_gives_children_the_default() -> None:
    """Launch a pytest of the probe with SIGINT ignored, as ``nohup pytest &`` does."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # we are such a suite already
        test_a_child_gets_python_s_ctrl_c_handler()
        return
    outer = (
        "import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "sys.exit(subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', "
        "'tests/test_children_signals.py::test_a_child_gets_python_s_ctrl_c_handler']))"
    )
    result = subprocess.run([sys.executable, "-c", outer], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
