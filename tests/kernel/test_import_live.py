"""`manage.py import_live` against namespaces loaded through each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command

from netviz import models
from netviz.engine.parser import parse_ruleset
from netviz.kernel import netns
from netviz.kernel.live import read_live

RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 10.9.3.5:8053
-A POSTROUTING -s 10.9.3.0/24 ! -o veth-a -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WEB - [0:0]
-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -m comment --comment "ssh from inside" -j ACCEPT
-A INPUT -m set --match-set allowed src -j ACCEPT
-A FORWARD -i veth-a -j WEB
-A WEB -p tcp -m multiport --dports 80,443 -m conntrack --ctstate NEW -j ACCEPT
-A WEB -j LOG --log-prefix "web drop "
-A WEB -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""
IPSETS = "create allowed hash:ip family inet hashsize 1024 maxelem 65536\nadd allowed 10.9.1.7\n"


def _rules(text: str) -> list[tuple[str, str, str]]:
    rs = parse_ruleset(text)
    # iptables-legacy-save prints tables in the kernel's order, not the dump's.
    return sorted(((r.table, r.chain, r.canonical()) for r in rs.rules()), key=lambda t: t[0])


@pytest.fixture
def loaded_ns(request: pytest.FixtureRequest, kernel: None) -> Iterator[str]:
    backend = request.param
    tool = netns.restore_tool(backend)
    if netns.missing_tools(tool):
        pytest.skip(f"{tool} is not installed")
    with netns.namespace("nvz-live") as ns:
        netns.in_ns(ns, ["ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b"])
        netns.in_ns(ns, ["ip", "addr", "add", "10.9.3.1/24", "dev", "veth-a"])
        netns.in_ns(ns, ["ip", "link", "set", "veth-a", "up"])
        netns.in_ns(ns, ["ip", "link", "set", "veth-b", "up"])
        netns.in_ns(ns, ["ip", "route", "add", "default", "via", "10.9.3.254", "dev", "veth-a"])
        netns.load(ns, RULES, backend=backend, ipsets_text=IPSETS)
        yield ns


@pytest.mark.parametrize("loaded_ns", ["nft", "legacy"], indirect=True)
@pytest.mark.django_db
def test_it_stores_the_rules_sets_and_host_of_a_namespace(loaded_ns: str) -> None:
    call_command("import_live", netns=loaded_ns, name="live node")
    ruleset = models.Ruleset.objects.get(name="live node")
    assert _rules(ruleset.source) == _rules(RULES)
    assert ruleset.rule_count == 8
    assert "add allowed 10.9.1.7" in ruleset.ipsets_source
    host = models.HostProfile.objects.get(ruleset=ruleset)
    assert {"name": "veth-a", "addrs": ["10.9.3.1/24"]} in host.interfaces
    assert host.routes == ["default via 10.9.3.254 dev veth-a"]


@pytest.mark.parametrize("loaded_ns", ["nft", "legacy"], indirect=True)
def test_it_says_which_backend_was_read(loaded_ns: str) -> None:
    snap = read_live(loaded_ns)
    backend = "nf_tables" if "nft" in netns.save(loaded_ns, "nft") and _rules(
        netns.save(loaded_ns, "nft")) else "legacy"
    assert snap.backend == backend
    if backend == "nf_tables":
        assert snap.reader == "iptables-nft-save"
    else:
        try:
            import iptc  # noqa: F401
        except ImportError:
            assert snap.reader == "iptables-legacy-save"
        else:
            # python-iptables sees the legacy tables: it is the reader, and
            # what it read is the same ruleset as iptables-legacy-save's.
            assert snap.reader == "python-iptables", snap.notes
        assert _rules(snap.ruleset_text) == _rules(RULES)
        fallback = read_live(loaded_ns, use_iptc=False)
        assert fallback.reader == "iptables-legacy-save"
        assert _rules(fallback.ruleset_text) == _rules(RULES)
