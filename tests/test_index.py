"""The chain index must not change a trace: same hops, verdicts, NAT, and the
rules it skips are exactly the ones the rule-by-rule walk finds not matched."""

from __future__ import annotations

import ipaddress
import random
import re
from pathlib import Path
from typing import Any

import pytest

from netviz.engine import index as index_mod
from netviz.engine import pipeline
from netviz.engine.context import Result, TraceState
from netviz.engine.host import Host
from netviz.engine.parser import ParseError, parse_ruleset
from netviz.engine.pipeline import PacketError, packet_from_dict, trace_packet
from netviz.engine.ruleset import Family, Ruleset
from netviz.engine.trace import Step, StepKind, Trace
from netviz.testing.gendump import generate_dump, sample_packets
from netviz.testing.randomrules import random_scenario

REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"


def _trace(ruleset: Ruleset, host: Host, packet: dict[str, Any], family: Family, use_index: bool,
           seed: int) -> Trace | str:
    try:
        pkt = packet_from_dict(packet, family)
        return trace_packet(ruleset, host, pkt, TraceState(seed=seed, use_index=use_index))
    except PacketError as exc:
        return f"PacketError: {exc}"


def _same_walk(plain: Trace, fast: Trace) -> int:
    """Checks `fast` step by step against `plain`; returns how many rules the
    index skipped."""
    skipped = 0
    steps = list(plain.steps)
    at = 0
    for step in fast.steps:
        if step.kind is StepKind.SKIP and step.note == index_mod.SKIP_NOTE:
            first, last = (int(n) for n in re.findall(r"\d+", step.text.replace(",", ""))[:2])
            for number in range(first, last + 1):
                other: Step = steps[at]
                assert other.kind is StepKind.RULE, other
                assert other.result is Result.NOMATCH, other
                assert (other.table, other.chain, other.rule) == (step.table, step.chain, number)
                assert other.packet == step.packet
                at += 1
                skipped += 1
            continue
        assert step == steps[at]
        at += 1
    assert at == len(steps)
    assert fast.hops() == plain.hops()
    assert fast.verdict == plain.verdict
    assert fast.packet_out == plain.packet_out
    assert fast.statistic == plain.statistic
    assert fast.uncertain == plain.uncertain
    assert fast.summary == plain.summary
    return skipped


def _compare(ruleset: Ruleset, host: Host, packets: list[dict[str, Any]], family: Family) -> int:
    skipped = 0
    for i, packet in enumerate(packets):
        plain = _trace(ruleset, host, packet, family, False, i)
        fast = _trace(ruleset, host, packet, family, True, i)
        if isinstance(plain, str) or isinstance(fast, str):
            assert plain == fast
            continue
        skipped += _same_walk(plain, fast)
    return skipped


def test_it_keeps_traces_of_generated_kube_proxy_dumps() -> None:
    dump = generate_dump(300, 3, calico_pods=40, seed=7)
    ruleset = parse_ruleset(dump.text)
    host = Host.from_dict(dump.host(), Family.IPV4)
    skipped = _compare(ruleset, host, sample_packets(dump, 300, seed=3), Family.IPV4)
    # KUBE-SERVICES has ~300 rules: the index must actually skip.
    assert skipped > 10_000


def test_it_skips_to_the_service_rule() -> None:
    dump = generate_dump(200, 2, seed=1)
    ruleset = parse_ruleset(dump.text)
    host = Host.from_dict(dump.host(), Family.IPV4)
    svc = [s for s in dump.services if s.endpoints][150]
    packet = {"proto": svc.proto, "src": "198.51.100.200", "dst": svc.cluster_ip,
              "dport": svc.port, "in_iface": "eth0"}
    trace = trace_packet(ruleset, host, packet_from_dict(packet), TraceState())
    nat_rules = [s for s in trace.steps if s.table == "nat" and s.chain == "KUBE-SERVICES"
                 and s.hook == "PREROUTING"]
    kinds = [s.kind for s in nat_rules]
    # one skipped run before the service's rule, the matching rule itself
    assert kinds[:2] == [StepKind.SKIP, StepKind.RULE]
    assert nat_rules[1].result is Result.MATCH
    assert nat_rules[1].verdict is not None and nat_rules[1].verdict.startswith("JUMP:KUBE-SVC-")
    assert str(trace.packet_out.dst) in svc.endpoints
    assert trace.packet_out.dport == svc.target_port


@pytest.mark.parametrize("seed", range(120))
def test_it_keeps_traces_of_random_rulesets_with_the_index_everywhere(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Index every chain and skip even single rules, so the small tangled
    # rulesets (jumps, gotos, RETURN, statistic, negations) exercise it.
    monkeypatch.setattr(index_mod, "INDEX_MIN_RULES", 0)
    monkeypatch.setattr(pipeline, "MIN_SKIP_RUN", 1)
    data = random_scenario(seed)
    family = Family(data.get("family", "ipv4"))
    ruleset = parse_ruleset(data["ruleset"], data.get("ipsets"), family=family)
    host = Host.from_dict(data["host"], family)
    rng = random.Random(seed)
    packets = [data["packet"]] + [_mutate(data["packet"], rng, ruleset) for _ in range(5)]
    _compare(ruleset, host, packets, family)


_ADDR = re.compile(r"(?:^| )-[sd] (\S+?)(?:/\d+)? ")
_PORT = re.compile(r"--dports? (\d+)")
_IFACE = re.compile(r"(?:^| )-[io] ([A-Za-z0-9_.@-]+) ")


def _vocab(text: str) -> tuple[list[str], list[int], list[str]]:
    addrs = sorted(set(_ADDR.findall(text)))
    ports = sorted({int(p) for p in _PORT.findall(text) if int(p) < 65536})
    ifaces = sorted(set(_IFACE.findall(text)))
    return addrs, ports, ifaces


def _mutate(packet: dict[str, Any], rng: random.Random, ruleset: Ruleset) -> dict[str, Any]:
    out = dict(packet)
    text = "\n".join(r.text for r in ruleset.rules()) + "\n"
    addrs, ports, _ = _vocab(text)
    version = 6 if ruleset.family is Family.IPV6 else 4
    addrs = [a for a in addrs if _version(a) == version]
    if addrs and rng.random() < 0.6:
        out["dst"] = rng.choice(addrs)
    if ports and rng.random() < 0.6:
        out["dport"] = rng.choice(ports)
    out["proto"] = rng.choice(["tcp", "tcp", "udp", "icmp"])
    return out


def _version(addr: str) -> int:
    try:
        return ipaddress.ip_address(addr).version
    except ValueError:
        return 0


def _realworld() -> list[Path]:
    return sorted(p for p in REALWORLD.iterdir() if p.suffix in (".rules", ".restore"))


@pytest.mark.parametrize("path", _realworld(), ids=lambda p: p.name)
def test_it_keeps_traces_of_realworld_dumps(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_mod, "INDEX_MIN_RULES", 0)
    monkeypatch.setattr(pipeline, "MIN_SKIP_RUN", 1)
    text = path.read_text()
    try:
        ruleset = parse_ruleset(text)
    except ParseError as exc:
        pytest.skip(f"{path.name} does not parse (anonymised placeholders?): {exc}")
    family = ruleset.family
    v6 = family is Family.IPV6
    addrs, ports, ifaces = _vocab(text)
    addrs = [a for a in addrs if _version(a) == (6 if v6 else 4)]
    ifaces = [i for i in ifaces if i != "lo"][:20] or ["eth0"]
    host = Host.from_dict(
        {
            "interfaces": [
                {"name": name, "addrs": [f"2001:db8:{n + 1:x}::1/64" if v6 else f"10.{200 + n // 200}.{n % 200}.1/24"]}
                for n, name in enumerate(ifaces)
            ],
            "routes": [f"default via {'2001:db8:1::fe' if v6 else '10.200.0.254'} dev {ifaces[0]}"],
        },
        family,
    )
    rng = random.Random(path.name)
    packets: list[dict[str, Any]] = []
    for _ in range(150):
        proto = rng.choice(["tcp", "tcp", "udp", "icmp"])
        pool = addrs or (["2001:db8:9::9"] if v6 else ["203.0.113.9"])
        packet: dict[str, Any] = {
            "proto": proto,
            "src": rng.choice(pool) if rng.random() < 0.3 else ("2001:db8:7::7" if v6 else "203.0.113.7"),
            "dst": rng.choice(pool) if rng.random() < 0.7 else ("2001:db8:8::8" if v6 else "198.51.100.8"),
            "sport": rng.randrange(1024, 65535),
            "dport": rng.choice(ports) if ports and rng.random() < 0.7 else rng.randrange(1, 65535),
            "ctstate": rng.choice(["NEW", "NEW", "ESTABLISHED"]),
        }
        if rng.random() < 0.8:
            packet["in_iface"] = rng.choice(ifaces)
        packets.append(packet)
    _compare(ruleset, host, packets, family)


def test_it_is_used_only_for_long_chains() -> None:
    text = "*filter\n:INPUT ACCEPT [0:0]\n" + "".join(
        f"-A INPUT -d 10.0.0.{i}/32 -j DROP\n" for i in range(1, 10)
    ) + "COMMIT\n"
    ruleset = parse_ruleset(text)
    host = Host.from_dict({"interfaces": [{"name": "eth0", "addrs": ["10.1.0.1/24"]}]}, Family.IPV4)
    trace = trace_packet(ruleset, host, packet_from_dict(
        {"proto": "tcp", "src": "10.1.0.2", "dst": "10.1.0.1", "in_iface": "eth0"}))
    # 9 rules < INDEX_MIN_RULES: every rule keeps its own not-matched step.
    rules = [s for s in trace.steps if s.chain == "INPUT" and s.kind is StepKind.RULE]
    assert [s.rule for s in rules] == list(range(1, 10))
    assert all(s.kind is not StepKind.SKIP for s in trace.steps if s.chain == "INPUT")
