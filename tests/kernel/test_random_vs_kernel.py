"""Random tangled rulesets: the engine's hops against the kernel's, seed by seed.

NETVIZ_RANDOM_SEEDS sets how many seeds run (default 60); NETVIZ_RANDOM_START
the first seed.  A failure prints the seed, the hop diff and the ruleset, so
`random_scenario(seed)` reproduces it.
"""

from __future__ import annotations

import os

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import check_loads, replay
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff
from netviz.testing.randomrules import random_scenario

pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

START = int(os.environ.get("NETVIZ_RANDOM_START", "0"))
COUNT = int(os.environ.get("NETVIZ_RANDOM_SEEDS", "60"))
# Seeds that once showed a difference, kept whatever the range:
# 6, 48, 49 nat INPUT (100) runs before security INPUT (150);
# 164 ctstate on the loopback way back in; 277, 324 TTL is decremented
# before FORWARD; 1141 MASQUERADE out of lo keeps a global source address.
REGRESSION_SEEDS = [6, 48, 49, 164, 277, 324, 1141]
SEEDS = list(range(START, START + COUNT)) + [s for s in REGRESSION_SEEDS if not START <= s < START + COUNT]


def test_the_generator_is_deterministic() -> None:
    assert random_scenario(7) == random_scenario(7)
    assert random_scenario(7) != random_scenario(8)


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_every_generated_ruleset_loads(seed: int) -> None:
    check_loads(random_scenario(seed)["ruleset"])


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_matches_kernel(seed: int) -> None:
    data = random_scenario(seed)
    sc = scenario_from_dict(data)
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, (
        f"seed {seed}: {data['name']}\npacket {data['packet']}\n{diff}\n\n{data['ruleset']}"
        + "\nkernel trace:\n" + "\n".join(kernel.raw)
    )
    if kernel.verdict is not None:
        assert engine.verdict == kernel.verdict, f"seed {seed}: fate differs"
