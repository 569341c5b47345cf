"""A snapshot in one step: import_snapshot, the command, trace --snapshot;
all or nothing, with the snapshot line at fault."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from netviz import models
from netviz.snapshots import SnapshotError, import_snapshot

pytestmark = pytest.mark.django_db

SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "snapshots" / "bridge-node.snapshot"


def snapshot_text() -> str:
    return SNAPSHOT.read_text()


def _counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (models.Ruleset, models.HostProfile, models.Snapshot, models.Rule))


def test_it_imports_rulesets_ipsets_and_hosts_in_one_step() -> None:
    result = import_snapshot(snapshot_text(), name="node-7")
    v4, v6 = result.rulesets
    # The rule counts include the nft listing's own table (one rule).
    assert (v4.name, v4.family, v4.rule_count) == ("node-7", "ipv4", 12)
    assert (v6.name, v6.family, v6.rule_count) == ("node-7 (IPv6)", "ipv6", 2)
    assert '"node-extra"' in v4.nftables_source and v4.nftables_source == v6.nftables_source
    # The tables iptables-nft manages come from the iptables-save sections.
    assert '"KUBE-NODEPORTS"' not in v4.nftables_source
    assert list(v4.ipsets.values_list("name", flat=True)) == ["KUBE-NODE-PORT-TCP"]
    host = v4.hosts.get()
    ifaces = {i["name"]: i for i in host.interfaces}
    assert ifaces["veth1"]["master"] == "br0" and "10.78.0.1/24" in ifaces["eth0"]["addrs"]
    assert "default via 10.78.0.254 dev eth0" in host.routes
    # The host profile keeps the path sysctls, and gives them to every trace.
    assert host.sysctls["net.ipv4.conf.all.route_localnet"] == "1"
    assert host.as_scenario_host()["sysctls"] == host.sysctls
    row = models.Snapshot.objects.get()
    assert row.ruleset == v4 and row.ruleset6 == v6 and row.text == snapshot_text()
    assert row.hostname == "vm" and row.taken.startswith("20")
    # Anonymous imports are public, as anonymous uploads are.
    assert v4.is_public and row.is_public


def test_an_owners_import_is_private_unless_asked(django_user_model: type) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw-alice-123")
    result = import_snapshot(snapshot_text(), owner=alice)
    assert not result.ruleset.is_public and not result.snapshot.is_public
    assert all(not h.is_public for h in result.hosts)
    result = import_snapshot(snapshot_text(), owner=alice, is_public=True)
    assert models.Ruleset.objects.get(pk=result.ruleset.pk).is_public


def _bad_rule(text: str) -> tuple[str, int]:
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if "--dport 30080 -j DNAT" in line)
    lines[at] = lines[at].replace("--to-destination", "--to-nowhere")
    return "\n".join(lines), at + 1


def test_a_bad_listing_stores_nothing_and_names_the_snapshot_line() -> None:
    text, line = _bad_rule(snapshot_text())
    before = _counts()
    with pytest.raises(SnapshotError) as info:
        import_snapshot(text)
    assert info.value.line == line and info.value.section == "iptables"
    assert "iptables (nft)" in info.value.reason and "--to-nowhere" in info.value.text
    assert _counts() == before


def test_a_bad_ipset_listing_names_its_line() -> None:
    text = snapshot_text().replace("add KUBE-NODE-PORT-TCP 30080", "add KUBE-NODE-PORT-TCP 30080 bogus")
    with pytest.raises(SnapshotError) as info:
        import_snapshot(text)
    assert info.value.section == "ipset"
    assert text.split("\n")[info.value.line - 1].startswith("add KUBE-NODE-PORT-TCP")
    assert _counts() == (0, 0, 0, 0)


def test_the_command_imports_and_refuses(tmp_path: Path) -> None:
    out = StringIO()
    call_command("import_snapshot", str(SNAPSHOT), "--name", "cli-node", stdout=out)
    assert 'ruleset' in out.getvalue() and '"cli-node" (ipv4)' in out.getvalue()
    bad, line = _bad_rule(snapshot_text())
    path = tmp_path / "bad.snapshot"
    path.write_text(bad)
    err = StringIO()
    before = _counts()
    with pytest.raises(SystemExit):
        call_command("import_snapshot", str(path), stderr=err)
    assert f"{path}:{line}:" in err.getvalue() and "nothing was stored" in err.getvalue()
    assert _counts() == before


def test_trace_reads_a_snapshot() -> None:
    out = StringIO()
    call_command(
        "trace", "--snapshot", str(SNAPSHOT), "--json",
        "--packet", "tcp 10.78.0.9:40000 > 10.78.0.1:30080 in eth0", stdout=out,
    )
    trace = json.loads(out.getvalue())
    assert {"table": "nat", "chain": "KUBE-NODEPORTS", "rule": 2, "verdict": "ACCEPT"} in trace["hops"]
    assert trace["packet_out"]["dst"] == "10.77.0.2" and trace["packet_out"]["dport"] == 8080


def test_a_bad_nft_listing_names_the_section() -> None:
    text = snapshot_text().replace('{"family": "inet", "name": "node-extra",', '{"family": "inet",', 1)
    assert text != snapshot_text()
    with pytest.raises(SnapshotError) as info:
        import_snapshot(text)
    assert info.value.section == "nft" and "nftables[28].table: `name` missing" in info.value.reason
    assert text.split("\n")[info.value.line - 2].startswith("=== nft ")
    assert _counts() == (0, 0, 0, 0)


def test_trace_walks_the_snapshots_nftables_table() -> None:
    out = StringIO()
    call_command(
        "trace", "--snapshot", str(SNAPSHOT), "--json",
        "--packet", "tcp 10.77.0.2:40002 > 10.78.0.9:9999 in br0", stdout=out,
    )
    trace = json.loads(out.getvalue())
    assert trace["hops"][-1] == {"family": "inet", "table": "node-extra", "chain": "extra_forward",
                                 "rule": 1, "verdict": "DROP"}
    assert trace["verdict"] == "DROP"
    # The copies of iptables-nft's own tables in the listing are not walked twice.
    assert not [h for h in trace["hops"] if h.get("family") in ("ip", "ip6")]
