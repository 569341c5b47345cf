"""The match and target evaluators against the real kernel.

Each scenario loads many probe rules whose target does not end the chain
(`MARK --set-xmark 0x0/0x0` changes nothing and reports `continue`), so the
kernel's hop list says, rule by rule, which matched.  The engine's hops must
be the same list.  Skipped where network namespaces cannot be made.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import kernel_available, replay
from netviz.testing import hops_diff
from netviz.testing.scenarios import scenario

pytestmark = pytest.mark.kernel

NOP = "-j MARK --set-xmark 0x0/0x0"

FWD_TCP: dict[str, Any] = {
    "proto": "tcp", "src": "10.88.1.2", "sport": 40000, "dst": "10.88.2.5", "dport": 80,
    "in_iface": "eth0", "tcp_flags": "S",
}
IN_TCP: dict[str, Any] = {
    "proto": "tcp", "src": "10.88.1.2", "sport": 40002, "dst": "10.88.1.1", "dport": 22,
    "in_iface": "eth0", "tcp_flags": "S",
}
FWD_ICMP: dict[str, Any] = {
    "proto": "icmp", "src": "10.88.1.2", "dst": "10.88.2.5", "icmp_type": 8, "icmp_code": 0, "in_iface": "eth0",
}


def probes(table: str, chains: dict[str, list[str]], policies: dict[str, str] | None = None) -> str:
    lines = [f"*{table}"]
    for chain in chains:
        lines.append(f":{chain} {(policies or {}).get(chain, 'ACCEPT')} [0:0]")
    for chain, rules in chains.items():
        lines += [f"-A {chain} {r} {NOP}" if "-j " not in r else f"-A {chain} {r}" for r in rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def compare(ruleset: str, packet: dict[str, Any], ipsets: str | None = None, family: str = "ipv4",
            host: dict[str, Any] | None = None) -> None:
    ok, why = kernel_available()
    if not ok:
        pytest.skip(f"kernel replay unavailable: {why}")
    sc = scenario(ruleset, packet, host=host, ipsets=ipsets, family=family)
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, "\n" + diff + "\n" + ruleset + "\n".join(kernel.raw)
    if kernel.verdict is not None:
        assert engine.verdict == kernel.verdict
    if kernel.packet_out is not None:
        mine = engine.packet_out.header()
        assert {k: str(mine.get(k)) for k in kernel.packet_out} == {
            k: str(v) for k, v in kernel.packet_out.items()
        }


BASIC_FORWARD = [
    "-s 10.88.1.0/255.255.255.0",
    "-s 10.0.0.2/255.0.0.255",
    "-s 10.0.0.3/255.0.0.255",
    "! -d 10.88.2.0/24",
    "-i eth+",
    "-o eth1",
    "! -o eth1",
    "-p 6",
    "! -p udp",
    "-f",
    "! -f",
    "-p tcp -m tcp --sport 40000:40010",
    "-p tcp -m tcp --dport :79",
    "-p tcp -m tcp --dport 80:",
    "-p tcp -m tcp --tcp-flags SYN,ACK SYN",
    "-p tcp -m tcp --tcp-flags ALL SYN,ACK",
    "-p tcp -m tcp --syn",
    "-p tcp -m tcp ! --syn",
    "-p tcp -m multiport --ports 80",
    "-p tcp -m multiport --dports 1:79,81:100",
    "-p tcp -m multiport ! --sports 1:1024",
    "-m iprange --src-range 10.88.1.1-10.88.1.3",
    "-m iprange ! --dst-range 10.88.2.1-10.88.2.9",
    "-m ttl --ttl-eq 63",
    "-m ttl --ttl-gt 63",
    "-m tos --tos 0x0/0xff",
    "-m dscp --dscp 0x0",
    "-m dscp ! --dscp-class EF",
    "-m pkttype --pkt-type unicast",
    "-m pkttype --pkt-type broadcast",
    "-m physdev ! --physdev-is-bridged",
    "-m physdev --physdev-in eth0",
    '-m comment --comment "just a comment"',
    "-m mark --mark 0x0",
    "-m mark ! --mark 0x1/0x1",
    "-m connmark --mark 0x0",
    "-m length --length 40",
    "-m length --length 41:1500",
]

CT_FORWARD = [
    "-m conntrack --ctstate NEW",
    "-m conntrack ! --ctstate NEW",
    "-m conntrack --ctstate DNAT",
    "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT",
    "-m conntrack --ctorigdst 10.88.2.5",
    "-m conntrack --ctorigsrc 10.88.1.0/24 --ctorigdstport 80",
    "-m conntrack --ctreplsrc 10.88.2.5 --ctrepldst 10.88.1.2",
    "-m conntrack --ctdir ORIGINAL",
    "-m conntrack --ctdir REPLY",
    "-m conntrack --ctproto tcp",
    "-m conntrack --ctstatus CONFIRMED",
    "-m conntrack --ctstatus SEEN_REPLY",
    "-m state --state NEW,ESTABLISHED",
    "-m state --state INVALID",
]

ADDRTYPE_FORWARD = [
    "-m addrtype --src-type UNICAST",
    "-m addrtype --dst-type LOCAL",
    "-m addrtype ! --dst-type LOCAL",
    "-m addrtype --dst-type UNICAST --limit-iface-out",
    "-m addrtype --src-type LOCAL,BROADCAST",
]

STATEFUL_FORWARD = [
    "-m statistic --mode nth --every 2 --packet 0",
    "-m statistic --mode nth --every 3 --packet 1",
    "-m statistic --mode random --probability 1.0",
    "-m statistic --mode random --probability 0.0",
    "-m limit --limit 1/sec",
    "-m hashlimit --hashlimit-upto 1/sec --hashlimit-name probe",
    "-m hashlimit --hashlimit-above 1/sec --hashlimit-name probe2",
    "-m recent --name probe --rcheck",
    "-m recent --name probe --set",
    "-m recent --name probe --rcheck",
    "-m recent --name probe --update",
    "-m recent --name other ! --rcheck",
]


@pytest.mark.parametrize("rules", [BASIC_FORWARD, CT_FORWARD, ADDRTYPE_FORWARD, STATEFUL_FORWARD],
                         ids=["basic", "conntrack", "addrtype", "stateful"])
def test_forward_probes_match_like_the_kernel(rules: list[str]) -> None:
    compare(probes("filter", {"INPUT": [], "FORWARD": rules, "OUTPUT": []}), FWD_TCP)


def test_input_probes_with_addrtype_limit_iface_and_rpfilter() -> None:
    ruleset = probes("raw", {
        "PREROUTING": [
            "-m rpfilter",
            "-m rpfilter --invert",
            "-m conntrack --ctstate INVALID",
            "-m state --state NEW",
            "-m addrtype --dst-type LOCAL --limit-iface-in",
        ],
        "OUTPUT": [],
    }) + probes("filter", {
        "INPUT": [
            "-m addrtype --dst-type LOCAL",
            "-m addrtype --dst-type LOCAL --limit-iface-in",
            "-d 10.88.1.1 -m addrtype --src-type UNICAST --limit-iface-in",
            "-m conntrack --ctstate NEW",
        ],
        "FORWARD": [],
        "OUTPUT": [],
    })
    compare(ruleset, IN_TCP)
    # Addressed to eth1's address but arriving on eth0.
    compare(ruleset, {**IN_TCP, "dst": "10.88.2.1"})
    # A spoofed source: the reverse route points to eth1.
    compare(ruleset, {**IN_TCP, "src": "10.88.2.77"})


def test_icmp_probes() -> None:
    rules = [
        "-p icmp -m icmp --icmp-type 8",
        "-p icmp -m icmp --icmp-type echo-request",
        "-p icmp -m icmp --icmp-type 8/1",
        "-p icmp -m icmp --icmp-type any",
        "-p icmp -m icmp ! --icmp-type 0",
        "-p icmp -m icmp --icmp-type destination-unreachable",
    ]
    compare(probes("filter", {"INPUT": [], "FORWARD": rules, "OUTPUT": []}), FWD_ICMP)


SETS = """create ipport hash:ip,port family inet hashsize 1024 maxelem 65536
add ipport 10.88.2.5,tcp:80
add ipport 10.88.2.6,udp:53
create nets hash:net family inet hashsize 1024 maxelem 65536
add nets 10.88.0.0/16
add nets 10.88.1.0/24 nomatch
create nets2 hash:net family inet hashsize 1024 maxelem 65536
add nets2 10.88.0.0/16 nomatch
add nets2 10.88.1.0/28
create ports bitmap:port range 0-1024
add ports 80
create netiface hash:net,iface family inet hashsize 1024 maxelem 65536
add netiface 10.88.0.0/16,eth0
create lst list:set size 8
add lst ipport
add lst nets2
create ipportnet hash:ip,port,net family inet hashsize 1024 maxelem 65536
add ipportnet 10.88.2.5,tcp:80,10.88.1.0/24
"""


def test_set_probes() -> None:
    rules = [
        "-m set --match-set ipport dst,dst",
        "-m set --match-set ipport src,dst",
        "-m set --match-set ipport dst",
        "-m set ! --match-set ipport dst,dst",
        "-m set --match-set nets src",
        "-m set --match-set nets src --return-nomatch",
        "-m set --match-set nets dst",
        "-m set --match-set nets2 src",
        "-m set --match-set ports dst",
        "-m set --match-set ports src",
        "-m set --match-set netiface src,src",
        "-m set --match-set netiface src,dst",
        "-m set --match-set lst dst,dst",
        "-m set --match-set lst src",
        "-m set --match-set ipportnet dst,dst,src",
        "-m set --match-set ipportnet dst,dst,dst",
    ]
    compare(probes("filter", {"INPUT": [], "FORWARD": rules, "OUTPUT": []}), FWD_TCP, ipsets=SETS)


def test_mark_and_connmark_targets() -> None:
    ruleset = probes("mangle", {
        "PREROUTING": [
            "-j MARK --set-xmark 0x4000/0x4000",
            "-m mark --mark 0x4000/0x4000",
            "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
            "-m connmark --mark 0x4000",
            "-j MARK --set-xmark 0x0/0xffffffff",
            "-m mark --mark 0x0",
            "-j CONNMARK --restore-mark --nfmask 0xf000 --ctmask 0xffffffff",
            "-m mark --mark 0x4000",
            "-j CONNMARK --set-xmark 0x1/0x1",
            "-m connmark --mark 0x4001",
            "-j MARK --xor-mark 0x1",
            "-m mark --mark 0x4001",
        ],
        "INPUT": [], "FORWARD": [], "OUTPUT": [], "POSTROUTING": [],
    })
    compare(ruleset, FWD_TCP)


def test_nat_targets_rewrite_like_the_kernel() -> None:
    host = {
        "interfaces": [
            {"name": "eth0", "addrs": ["10.88.1.1/24"]},
            {"name": "eth1", "addrs": ["172.16.9.1/24", "10.88.2.1/24"]},
            {"name": "eth2", "addrs": ["192.0.2.1/24"]},
        ],
        "routes": ["default via 192.0.2.254 dev eth2"],
    }
    dnat = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.88.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.2.5:80
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate DNAT -m conntrack --ctorigdst 10.88.1.1 --ctorigdstport 8080 -j MARK --set-xmark 0x0/0x0
COMMIT
"""
    # MASQUERADE on eth1 picks 10.88.2.1 (same subnet as the next hop), not
    # eth1's first address 172.16.9.1.
    compare(dnat, {**IN_TCP, "dport": 8080}, host=host)
    snat = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth2 -j SNAT --to-source 192.0.2.77
COMMIT
"""
    compare(snat, {**FWD_TCP, "dst": "203.0.113.9"}, host=host)
    redirect = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128
COMMIT
"""
    compare(redirect, FWD_TCP, host=host)


def test_ipv6_probes() -> None:
    rules = [
        "-s 2001:db8:1::/64",
        "-d 2001:db8:2::5/128",
        "-p tcp -m tcp --dport 80",
        "-m hl --hl-eq 63",
        "-m hl --hl-gt 63",
        "-m rt --rt-type 0",
        "-m rt ! --rt-type 0",
        "-m frag --fragid 5",
        "-m addrtype --dst-type UNICAST",
        "-m addrtype --dst-type LOCAL",
        "-m addrtype --dst-type UNICAST,LOCAL",
        "-m addrtype --src-type MULTICAST",
        "-m conntrack --ctstate NEW",
        "-m length --length 60:100",
    ]
    packet = {"proto": "tcp", "src": "2001:db8:1::2", "sport": 40000, "dst": "2001:db8:2::5", "dport": 80,
              "in_iface": "eth0", "tcp_flags": "S"}
    compare(probes("filter", {"INPUT": [], "FORWARD": rules, "OUTPUT": []}), packet, family="ipv6")
    icmp = [
        "-p ipv6-icmp -m icmp6 --icmpv6-type 128",
        "-p ipv6-icmp -m icmp6 --icmpv6-type echo-request",
        "-p ipv6-icmp -m icmp6 --icmpv6-type 129",
        "-p ipv6-icmp -m icmp6 ! --icmpv6-type 1",
    ]
    ping = {"proto": "icmpv6", "src": "2001:db8:1::2", "dst": "2001:db8:2::5", "icmp_type": 128, "icmp_code": 0,
            "in_iface": "eth0"}
    compare(probes("filter", {"INPUT": [], "FORWARD": icmp, "OUTPUT": []}), ping, family="ipv6")


def test_output_probes_for_a_local_socket() -> None:
    rules = [
        "-o eth2",
        "-i eth0",
        "! -i +",
        "-m owner --uid-owner 0",
        "-m owner ! --uid-owner 0",
        "-m addrtype --src-type LOCAL",
        "-m addrtype --src-type LOCAL --limit-iface-out",
        "-m addrtype --dst-type LOCAL",
        "-m conntrack --ctstate NEW",
        "-m pkttype --pkt-type unicast",
    ]
    packet = {"proto": "udp", "src": "192.0.2.1", "sport": 40003, "dst": "198.51.100.7", "dport": 53, "uid": 0}
    # -i in a user chain: iptables only refuses it in OUTPUT itself.
    chains = {"INPUT": [], "FORWARD": [], "OUTPUT": ["-j probe"], "probe": rules}
    compare(probes("filter", chains, {"probe": "-"}), packet)
    nat = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353
COMMIT
"""
    compare(nat, packet)


def test_policy_routing_picks_the_output_interface() -> None:
    # wg-quick's rules: main without its default route, then table 51820.
    host = {
        "interfaces": [
            {"name": "eth0", "addrs": ["10.88.1.1/24"]},
            {"name": "eth1", "addrs": ["10.88.2.1/24"]},
            {"name": "eth2", "addrs": ["192.0.2.1/24"]},
        ],
        "routes": ["default via 192.0.2.254 dev eth2", "default via 10.88.2.254 dev eth1 table 51820"],
        "rules": ["not fwmark 0xca6c table 51820", "table main suppress_prefixlength 0"],
    }
    rules = ["-o eth1", "-o eth2", "-m addrtype --dst-type UNICAST --limit-iface-out"]
    packet = {"proto": "udp", "src": "10.88.2.1", "sport": 40003, "dst": "198.51.100.7", "dport": 53}
    compare(probes("filter", {"INPUT": [], "FORWARD": [], "OUTPUT": rules}), packet, host=host)
    compare(probes("filter", {"INPUT": [], "FORWARD": [], "OUTPUT": rules}), {**packet, "mark": 0xCA6C,
                                                                              "src": "192.0.2.1"}, host=host)
