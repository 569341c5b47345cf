"""Random conversations against the kernel: every packet of a connection
(the first, its reply, a later one), hop by hop, and every RST or ICMP error
the host sent back.

NETVIZ_RANDOM_CONV_SEEDS sets how many seeds run per generator (default 15);
NETVIZ_RANDOM_CONV_START the first seed.  A failure prints the seed and the
differing packet, so `random_conversation(seed, generator)` reproduces it.
"""

from __future__ import annotations

import os

import pytest

from netviz.engine.conversation import trace_conversation_scenario
from netviz.kernel.conversation import NEVER_SHOWN, replay_conversation
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff
from netviz.testing.randomconv import random_conversation

pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

START = int(os.environ.get("NETVIZ_RANDOM_CONV_START", "0"))
COUNT = int(os.environ.get("NETVIZ_RANDOM_CONV_SEEDS", "15"))
# (generator, seed) pairs that once showed a difference, kept whatever the range:
# (1, 9) an echo to oneself: request and reply differ only by ICMP type;
# (2, 16) a UDP answer leaves from the address the datagram came to;
# (2, 25) client and server behind one interface (hairpin);
# (2, 68) a route failure answers with an ICMP error; (2, 213) --ctproto of
# an ICMP error is its connection's; (2, 216), (2, 233), (2, 241) the host's
# answers have no owner; (2, 171) connbytes accounting and the MSS over lo;
# (2, 124), (2, 156) connlimit counts a connection once across packets;
# (2, 412) a local echo reply comes from the kernel's ICMP socket (no owner).
REGRESSIONS = [(1, 9), (2, 16), (2, 25), (2, 68), (2, 213), (2, 216), (2, 233), (2, 241), (2, 171),
               (2, 124), (2, 156), (2, 412)]
CASES = [(g, s) for g in (1, 2) for s in range(START, START + COUNT)]
CASES += [c for c in REGRESSIONS if c not in CASES]


def test_the_generator_is_deterministic_and_adds_packets() -> None:
    assert random_conversation(7, 1) == random_conversation(7, 1)
    assert random_conversation(7, 2) != random_conversation(8, 2)
    assert all(len(random_conversation(s, g)["packets"]) >= 2 for g in (1, 2) for s in range(20))


@pytest.mark.parametrize(("generator", "seed"), CASES)
def test_every_packet_matches_the_kernel(generator: int, seed: int) -> None:
    data = random_conversation(seed, generator)
    sc = scenario_from_dict(data)
    kernel = replay_conversation(sc)
    engine = trace_conversation_scenario(sc)
    where = f"generator {generator} seed {seed}: {data['name']}\npacket {data['packet']}\n"
    for i, (k, e) in enumerate(zip(kernel, engine.packets, strict=True)):
        if k.not_sent == NEVER_SHOWN:
            # Random rules can leave an endpoint unable to send what the
            # scenario lists (an answer from an unexpected address is reset,
            # not acknowledged); the packets before it were compared.
            break
        raw = "\n".join(k.trace.raw) if k.trace else k.not_sent
        assert (k.trace is None) == (e.trace is None), f"{where}packet {i + 1}: sent? {raw}\n{data['ruleset']}"
        if k.trace is None or e.trace is None:
            continue
        diff = hops_diff(list(k.trace.hops), e.trace.hops())
        assert not diff, f"{where}packet {i + 1} ({e.dir}):\n{diff}\n\n{data['ruleset']}\nkernel:\n{raw}"
        if k.trace.verdict is not None:
            assert k.trace.verdict == e.trace.verdict, f"{where}packet {i + 1}: fate differs\n{raw}"
        related = e.trace.related
        assert (k.related is None) == (related is None), f"{where}packet {i + 1}: the host's answer\n{raw}"
        if k.related is not None and related is not None:
            diff = hops_diff(list(k.related.hops), related.hops())
            assert not diff, f"{where}packet {i + 1}: the host's answer:\n{diff}\n" + "\n".join(k.related.raw)
