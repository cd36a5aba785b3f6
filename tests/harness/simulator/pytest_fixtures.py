"""pytest fixtures for the DKP simulator (imported by tests/conftest.py).

* ``simulator`` (session): a :class:`SimulatorControl` for the simulator of ``dkp_cluster``.
* ``fresh_simulator`` (function): the same, reset to the initial state before the test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .control import SimulatorControl, SimulatorError


def _wait_state_file(d: Path, timeout: float = 30.0) -> None:
    path = d / "simulator.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            json.loads(path.read_text())
            return
        except (OSError, ValueError):
            time.sleep(0.1)
    pytest.skip(f"no simulator for this cluster ({path} missing)")


@pytest.fixture(scope="session")
def simulator(dkp_cluster) -> SimulatorControl:
    if getattr(dkp_cluster, "dir", None) is None:
        pytest.skip("the cluster is not a harness cluster: no simulator to steer")
    d = Path(dkp_cluster.dir)
    _wait_state_file(d)
    ctl = SimulatorControl(d)
    try:
        ctl.state()
    except SimulatorError as e:
        pytest.skip(f"simulator not reachable: {e}")
    return ctl


@pytest.fixture
def fresh_simulator(simulator) -> SimulatorControl:
    simulator.reset()
    yield simulator
    # leave nothing paused or held for the next test
    try:
        simulator.resume()
        simulator.release_condition()
    except SimulatorError:
        pass
