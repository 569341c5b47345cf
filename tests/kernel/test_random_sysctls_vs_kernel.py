"""Seeded random sysctl scenarios (netviz.testing.randomsysctl), hop for hop
against the kernel.  NETVIZ_RANDOM_SYSCTL_SEEDS / _START widen the run."""

from __future__ import annotations

import os

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff
from netviz.testing.randomsysctl import random_scenario

START = int(os.environ.get("NETVIZ_RANDOM_SYSCTL_START", "0"))
COUNT = int(os.environ.get("NETVIZ_RANDOM_SYSCTL_SEEDS", "30"))


@pytest.mark.parametrize("seed", range(START, START + COUNT))
def test_random_sysctls_agree_with_the_kernel(kernel: None, seed: int) -> None:
    data = random_scenario(seed)
    sc = scenario_from_dict(data)
    engine = trace_scenario(sc)
    kernel_trace = replay(sc)
    diff = hops_diff(kernel_trace.hops, engine.hops())
    assert not diff, f"seed {seed}: {data['host']['sysctls']} {data['packet']}\n{engine.summary}\n{diff}"
    if kernel_trace.verdict is not None:
        assert kernel_trace.verdict == engine.verdict, engine.summary
