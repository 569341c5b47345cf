"""The snapshot container (docs/snapshot.md): reading what netviz-collect
wrote, refusing what it did not, and the scenario parts it yields."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from netviz.engine.snapshot import (
    SnapshotError,
    choose_rules,
    parse_snapshot,
    scenario_parts,
    sysctls,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "snapshots"
COLLECTOR = ROOT / "scripts" / "netviz-collect"


def bridge_node() -> str:
    return (DATA / "bridge-node.snapshot").read_text()


def test_it_reads_a_collected_snapshot() -> None:
    snap = parse_snapshot(bridge_node())
    assert snap.version == 1 and snap.meta("collector") == "netviz-collect 1"
    names = [s.name for s in snap.sections]
    assert names[:4] == ["iptables", "iptables", "ip6tables", "ip6tables"]
    assert {"ipset", "nft", "ip-addr", "ip-link", "ip-route", "ip6-route", "ip-rule", "ip6-rule", "sysctl"} <= set(names)
    nft = snap.one("nft")
    assert nft is not None and nft.attr("command") == "nft -j list ruleset" and nft.attr("status") == "0"
    values = sysctls(snap)
    assert values["net.ipv4.ip_forward"] == "1"
    assert values["net.ipv4.conf.all.route_localnet"] == "1"
    assert values["net.bridge.bridge-nf-call-iptables"] == "1"


def test_it_builds_the_scenario_parts_of_each_family() -> None:
    snap = parse_snapshot(bridge_node())
    v4 = scenario_parts(snap, "ipv4")
    assert "-A KUBE-NODEPORTS" in v4["ruleset"] and v4["family"] == "ipv4"
    assert "KUBE-NODE-PORT-TCP" in v4["ipsets"] and '"node-extra"' in v4["nftables"]
    ifaces = {i["name"]: i for i in v4["host"]["interfaces"]}
    assert ifaces["veth1"]["master"] == "br0" and ifaces["br0"]["type"] == "bridge"
    assert "default via 10.78.0.254 dev eth0" in v4["host"]["routes"]
    assert v4["host"]["sysctls"]["net.ipv4.conf.all.route_localnet"] == "1"
    v6 = scenario_parts(snap, "ipv6")
    assert "-A FORWARD -i br0 -j ACCEPT" in v6["ruleset"] and v6["host"]["routes"] == []


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _error(text: str) -> SnapshotError:
    with pytest.raises(SnapshotError) as info:
        parse_snapshot(text)
    return info.value


def test_it_refuses_what_is_not_a_snapshot() -> None:
    assert _error("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n").line == 1
    err = _error(_replace(bridge_node(), "netviz-snapshot 1", "netviz-snapshot 7"))
    assert err.line == 1 and "version 7" in err.reason


def test_it_refuses_a_cut_off_snapshot() -> None:
    text = bridge_node()
    cut = text[: text.index("=== sysctl")]
    err = _error(cut)
    assert "cut off" in err.reason and "=== end" in err.reason


def test_it_names_the_line_and_section_of_broken_json() -> None:
    text = bridge_node()
    lines = text.split("\n")
    at = lines.index(next(line for line in lines if line.startswith("=== ip-route "))) + 1
    original = lines[at]
    lines[at] = lines[at][:-5]  # cut the JSON short
    err = _error("\n".join(lines))
    assert err.line == at + 1 and err.section == "ip-route"
    assert "not valid JSON" in err.reason
    lines[at] = original
    lines[at + 2] = lines[at + 2].replace('"', "'", 1)  # the ip6-route section
    err = _error("\n".join(lines))
    assert err.line == at + 3 and err.section == "ip6-route" and "column 3" in err.reason


def test_it_names_the_line_of_a_bad_sysctl() -> None:
    text = _replace(bridge_node(), "net.ipv4.ip_nonlocal_bind = 0", "rm -rf /")
    err = _error(text)
    assert err.section == "sysctl"
    assert text.split("\n")[err.line - 1] == "rm -rf /"


def test_it_refuses_a_section_twice_and_unknown_backends() -> None:
    text = bridge_node()
    twice = _replace(text, "=== ip-rule ", "=== ip-addr ")
    assert "appears twice" in _error(twice).reason
    odd = _replace(text, "backend=legacy", "backend=magic")
    assert "unknown backend" in _error(odd).reason


def test_it_keeps_sections_it_does_not_know() -> None:
    text = _replace(bridge_node(), "=== end", "=== conntrack command=\"conntrack -L\" status=0\nwhatever\n=== end")
    snap = parse_snapshot(text)
    assert snap.one("conntrack") is not None and snap.one("conntrack").body == "whatever\n"  # type: ignore[union-attr]


def _iptables(backend: str, rules: int) -> str:
    body = "*filter\n:INPUT ACCEPT [0:0]\n" + "".join(f"[0:0] -A INPUT -s 10.0.0.{i}/32 -j DROP\n" for i in range(rules))
    return f"=== iptables backend={backend} command=\"iptables-{backend}-save -c\" status=0\n{body}COMMIT\n"


def test_it_takes_the_backend_that_holds_the_rules_and_says_so() -> None:
    head = "netviz-snapshot 1\nhostname: n\n"
    snap = parse_snapshot(head + _iptables("nft", 0) + _iptables("legacy", 3) + "=== end\n")
    chosen = choose_rules(snap, "iptables")
    assert chosen.section is not None and chosen.section.attr("backend") == "legacy"
    assert chosen.notes == ()
    snap = parse_snapshot(head + _iptables("nft", 2) + _iptables("legacy", 3) + "=== end\n")
    chosen = choose_rules(snap, "iptables")
    assert chosen.section is not None and chosen.section.attr("backend") == "legacy"
    assert "iptables (nft) also holds 2 rules" in chosen.notes[0]


def test_it_notes_what_the_node_lacked() -> None:
    text = "netviz-snapshot 1\n=== iptables skipped=\"iptables-save not found\"\n=== end\n"
    chosen = choose_rules(parse_snapshot(text), "iptables")
    assert chosen.section is None and chosen.text == ""
    assert chosen.notes == ("iptables: skipped on the node (iptables-save not found)",)


def test_the_collector_is_posix_sh_and_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    proc = subprocess.run(["shellcheck", "-s", "sh", str(COLLECTOR)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_the_collector_prints_its_usage_and_refuses_unknown_arguments() -> None:
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh is not None
    ok = subprocess.run([sh, str(COLLECTOR), "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "--upload URL" in ok.stdout
    bad = subprocess.run([sh, str(COLLECTOR), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr
    # --upload without a token refuses before collecting anything.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    no_token = subprocess.run([sh, str(COLLECTOR), "--upload", "http://127.0.0.1:9/api/snapshots/"],
                              capture_output=True, text=True, env=env)
    assert no_token.returncode == 2 and "NETVIZ_TOKEN" in no_token.stderr


def test_the_nft_listing_leaves_out_the_tables_iptables_nft_manages() -> None:
    listing = (
        "table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        "\t\ttcp dport 30080 counter packets 0 bytes 0 meta mark set mark or 0x4000\n\t}\n}\n"
        "table inet node-extra {\n\tchain c {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n"
    )
    head = "netviz-snapshot 1\n" + _iptables("nft", 1).replace("*filter", "*nat\n:PREROUTING ACCEPT [0:0]\n*filter")
    text = head + f'=== nft format=text command="nft list ruleset" status=0\n{listing}=== end\n'
    nft = scenario_parts(parse_snapshot(text), "ipv4")["nftables"]
    assert "table ip nat" not in nft and "node-extra" in nft and nft.endswith("}\n")
    # JSON alike, by the tables' family and name.
    body = ('{"nftables": [{"table": {"family": "ip", "name": "nat"}}, {"chain": {"family": "ip", "table": "nat", '
            '"name": "PREROUTING"}}, {"table": {"family": "inet", "name": "nat"}}]}')
    text = head + f'=== nft format=json command="nft -j list ruleset" status=0\n{body}\n=== end\n'
    kept = json.loads(scenario_parts(parse_snapshot(text), "ipv4")["nftables"])["nftables"]
    assert kept == [{"table": {"family": "inet", "name": "nat"}}]
