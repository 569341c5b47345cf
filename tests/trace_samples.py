"""Hand-built traces shared by the report and DOT tests: they pin the output
format independently of the pipeline (real dumps are traced elsewhere)."""

from __future__ import annotations

import ipaddress

from netviz.engine.context import Result
from netviz.engine.packet import Conntrack, Packet
from netviz.engine.ruleset import Family
from netviz.engine.trace import Step, StepKind, Trace


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def dnat_trace() -> Trace:
    p0 = Packet(
        family=Family.IPV4, proto=6, src=ip("10.9.1.2"), dst=ip("10.96.0.10"),
        sport=40000, dport=53, in_iface="eth0",
    )
    ct = Conntrack(state="NEW", orig_src=p0.src, orig_dst=p0.dst, orig_sport=40000, orig_dport=53)
    p1 = p0.with_(ct=ct)
    p2 = p1.with_(mark=0x4000)
    p3 = p2.with_(dst=ip("10.244.7.5"), dport=8053)
    p4 = p3.with_(out_iface="cali0a1b")
    steps = (
        Step(StepKind.POLICY, "PREROUTING", "raw", "PREROUTING", verdict="ACCEPT", packet=p0),
        Step(StepKind.CONNTRACK, "PREROUTING", text="new conntrack entry", packet=p1),
        Step(StepKind.RULE, "PREROUTING", "nat", "PREROUTING", rule=1, line=12,
             text='-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
             result=Result.MATCH, verdict="JUMP:KUBE-SERVICES", packet=p1),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SERVICES", rule=1, line=20,
             text="-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-A",
             result=Result.NOMATCH, clause="-d 10.96.0.1/32", reason="10.96.0.10 ∉ 10.96.0.1/32",
             packet=p1, depth=1),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SERVICES", rule=2, line=21,
             text="-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j KUBE-SVC-X",
             result=Result.MATCH, verdict="JUMP:KUBE-SVC-X", packet=p1, depth=1),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SVC-X", rule=1, line=30,
             text="-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-Y",
             result=Result.MATCH, verdict="GOTO:KUBE-SEP-Y", packet=p1, depth=2, uncertain=True),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SEP-Y", rule=1, line=40,
             text="-A KUBE-SEP-Y -s 10.244.7.5/32 -j KUBE-MARK-MASQ",
             result=Result.NOMATCH, clause="-s 10.244.7.5/32", reason="10.9.1.2 ∉ 10.244.7.5/32",
             packet=p1, depth=2),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SEP-Y", rule=2, line=41,
             text="-A KUBE-SEP-Y -p tcp -m tcp -j MARK --set-xmark 0x4000/0x4000",
             result=Result.MATCH, verdict="CONTINUE", packet=p2, depth=2),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SEP-Y", rule=3, line=42,
             text="-A KUBE-SEP-Y -m foo --bar 1 -j DNAT --to-destination 10.244.7.5:8053",
             result=Result.UNKNOWN, clause="-m foo", reason="match foo is not evaluated",
             packet=p2, depth=2, uncertain=True),
        Step(StepKind.RULE, "PREROUTING", "nat", "KUBE-SEP-Y", rule=4, line=43,
             text="-A KUBE-SEP-Y -p tcp -m tcp -j DNAT --to-destination 10.244.7.5:8053",
             result=Result.MATCH, verdict="ACCEPT", packet=p3, depth=2),
        Step(StepKind.ROUTE, "PREROUTING", text="10.244.7.5 via cali0a1b: forward", packet=p4),
        Step(StepKind.RULE, "FORWARD", "filter", "FORWARD", rule=1, line=60,
             text="-A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT",
             result=Result.NOMATCH, clause="--dport 443", reason="--dport 443 ≠ 8053", packet=p4),
        Step(StepKind.RULE, "FORWARD", "filter", "FORWARD", rule=2, line=61,
             text="-A FORWARD -j KUBE-FORWARD", result=Result.MATCH,
             verdict="JUMP:KUBE-FORWARD", packet=p4),
        Step(StepKind.RETURN, "FORWARD", "filter", "KUBE-FORWARD", packet=p4, depth=1),
        Step(StepKind.POLICY, "FORWARD", "filter", "FORWARD", verdict="DROP", packet=p4),
    )
    return Trace(
        packet_in=p0, steps=steps, verdict="DROP", packet_out=p4, path="forward",
        summary="dropped by filter FORWARD policy",
        uncertain=(("nat", "KUBE-SEP-Y", 3),),
        statistic=(("nat", "KUBE-SVC-X", 1, 0.5, True),),
        hooks=("PREROUTING", "FORWARD"),
    )
