"""Random native-nftables scenarios (netviz/testing/randomnft.py): the
engine's hops, `family` included, against the kernel's, seed by seed.

NETVIZ_RANDOMNFT_SEEDS sets how many seeds run (default 150);
NETVIZ_RANDOMNFT_START the first.  A failure prints the seed, the hop diff
and both rulesets, so `random_nft_scenario(seed)` reproduces it.
"""

from __future__ import annotations

import os

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff
from netviz.testing.randomnft import random_nft_scenario

pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

START = int(os.environ.get("NETVIZ_RANDOMNFT_START", "0"))
COUNT = int(os.environ.get("NETVIZ_RANDOMNFT_SEEDS", "150"))


def test_the_generator_is_deterministic() -> None:
    assert random_nft_scenario(7) == random_nft_scenario(7)
    assert random_nft_scenario(7) != random_nft_scenario(8)


@pytest.mark.parametrize("seed", range(START, START + COUNT))
def test_engine_matches_kernel(seed: int) -> None:
    data = random_nft_scenario(seed)
    sc = scenario_from_dict(data)
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, (
        f"seed {seed}\npacket {data['packet']}\n{diff}\n\n{data['ruleset']}\n{data['nftables']}\n"
        "kernel trace:\n" + "\n".join(kernel.raw)
    )
    if kernel.verdict is not None:
        assert kernel.verdict == engine.verdict, f"seed {seed}: verdict"
