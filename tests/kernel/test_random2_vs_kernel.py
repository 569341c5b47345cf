"""The second random generator (ipsets, SET, stateful matches, rewrites, odd
packets): the engine's hops against the kernel's, seed by seed.

NETVIZ_RANDOM2_SEEDS sets how many seeds run (default 60); NETVIZ_RANDOM2_START
the first seed.  A failure prints the seed, the hop diff, the ruleset and the
ipsets, so `random_scenario2(seed)` reproduces it.
"""

from __future__ import annotations

import os

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import check_loads, replay
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff
from netviz.testing.randomrules2 import random_scenario2

pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

START = int(os.environ.get("NETVIZ_RANDOM2_START", "0"))
COUNT = int(os.environ.get("NETVIZ_RANDOM2_SEEDS", "60"))
# Every difference this generator found has a hand-written scenario in
# test_random2_regressions.py; REGRESSION_SEEDS keeps seeds that once differed
# with the generator as it is now.
REGRESSION_SEEDS: list[int] = []
SEEDS = list(range(START, START + COUNT)) + [s for s in REGRESSION_SEEDS if not START <= s < START + COUNT]


def test_the_generator_is_deterministic() -> None:
    assert random_scenario2(7) == random_scenario2(7)
    assert random_scenario2(7) != random_scenario2(8)


def test_uncertain_matches_only_on_request() -> None:
    plain = "\n".join(random_scenario2(s)["ruleset"] for s in range(40))
    for module in ("-m cpu", "-m string", "-m u32", "--probability 0.5"):
        assert module not in plain
    wild = "\n".join(random_scenario2(s, uncertain=True)["ruleset"] for s in range(40))
    assert "-m u32" in wild


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_every_generated_ruleset_loads(seed: int) -> None:
    data = random_scenario2(seed)
    check_loads(data["ruleset"], data["ipsets"])


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_matches_kernel(seed: int) -> None:
    data = random_scenario2(seed)
    sc = scenario_from_dict(data)
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, (
        f"seed {seed}: {data['name']}\npacket {data['packet']}\nhost {data['host']}\n{diff}\n\n"
        f"{data['ruleset']}\n{data['ipsets']}\nkernel trace:\n" + "\n".join(kernel.raw)
    )
    if kernel.verdict is not None:
        assert engine.verdict == kernel.verdict, f"seed {seed}: fate differs"
