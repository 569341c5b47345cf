"""Every rule of the real dumps in tests/data/realworld is read by the match
and target evaluators: no clause comes back as unreadable or unsupported."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netviz.engine.context import EvalContext, Result, TraceState
from netviz.engine.host import Host
from netviz.engine.matches import evaluate_match, evaluate_rule
from netviz.engine.packet import Conntrack, Packet
from netviz.engine.parser import parse_ruleset
from netviz.engine.ruleset import Family
from netviz.engine.targets import apply_target

REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"
DUMPS = sorted(p.name for p in REALWORLD.glob("*") if p.name.endswith((".rules", ".restore")))

HOOK_OF_CHAIN = {"PREROUTING": "PREROUTING", "INPUT": "INPUT", "FORWARD": "FORWARD", "OUTPUT": "OUTPUT", "POSTROUTING": "POSTROUTING"}


def _host(v6: bool) -> Host:
    addrs = ["2001:db8:1::1/64"] if v6 else ["10.9.1.1/24"]
    out = ["2001:db8:2::1/64"] if v6 else ["10.9.2.1/24"]
    gw = "2001:db8:2::fe" if v6 else "10.9.2.254"
    return Host.from_dict(
        {"interfaces": [{"name": "eth0", "addrs": addrs}, {"name": "eth1", "addrs": out}],
         "routes": [f"default via {gw} dev eth1"]},
        Family.IPV6 if v6 else Family.IPV4,
    )


@pytest.mark.parametrize("name", DUMPS)
def test_every_real_rule_is_read(name: str) -> None:
    # The ufw dump is anonymised: IP4_2 stands for 255.255.255.255 (its README).
    text = (REALWORLD / name).read_text().replace("IP4_2/32", "255.255.255.255/32")
    ruleset = parse_ruleset(text)
    v6 = ruleset.family is Family.IPV6
    host = _host(v6)
    src, dst = ("2001:db8:1::5", "2001:db8:9::9") if v6 else ("10.9.1.5", "10.244.7.5")
    base = Packet(
        family=ruleset.family, proto=6, src=ipaddress.ip_address(src), dst=ipaddress.ip_address(dst),
        sport=40000, dport=443, in_iface="eth0", out_iface="eth1",
    )
    base = base.with_(ct=Conntrack(
        state="NEW", orig_src=base.src, orig_dst=base.dst, orig_sport=40000, orig_dport=443,
        reply_src=base.dst, reply_dst=base.src, reply_sport=443, reply_dport=40000,
    ))
    problems: list[str] = []
    evaluated = 0
    for table in ruleset.tables:
        for chain in table.chains:
            hook = HOOK_OF_CHAIN.get(chain.name, "FORWARD" if table.name in ("filter", "mangle") else "PREROUTING")
            for rule in chain.rules:
                ctx = EvalContext(ruleset, host, hook, table.name, chain.name, rule.index, base, TraceState(seed=1))
                evaluate_rule(rule, ctx)
                evaluated += 1
                # Each match on its own: in the rule an earlier NOMATCH
                # would hide a later clause.
                for match in rule.matches:
                    out = evaluate_match(match, ctx)
                    if out.result is Result.UNKNOWN and ("cannot read" in out.reason or "does not evaluate" in out.reason):
                        problems.append(f"line {rule.line}: {out.reason}")
                if rule.target is None or table.chain(rule.target.name) is not None:
                    continue
                res = apply_target(rule, ctx)
                if res.unknown:
                    problems.append(f"line {rule.line}: target {rule.target.text()}: {res.note}")
    assert evaluated > 0
    assert not problems, "\n".join(problems)
