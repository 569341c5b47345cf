"""Conversations (scenario-v2 §3) against the kernel: every packet, hop by hop.

Each test replays a connection with real sockets at both ends
(netviz.kernel.conversation), asserts what the kernel showed for the packets
the test is about (so the scenario exercises what it claims), then that the
engine gives the same hops and verdict for every packet.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.conversation import Conversation, trace_conversation_scenario
from netviz.kernel.conversation import KernelPacket, replay_conversation
from netviz.scenario import Scenario, scenario_from_dict
from netviz.testing import hops_diff
from netviz.testing.scenarios import HOST

pytestmark = pytest.mark.usefixtures("kernel")

CLIENT = "10.88.1.2"  # behind eth0
SERVER = "10.88.2.5"  # behind eth1
LOCAL = "10.88.1.1"  # the host's eth0 address
VIP = "198.18.0.10"  # a service address nobody owns


def H(table: str, chain: str, rule: int, verdict: str) -> dict[str, Any]:
    return {"table": table, "chain": chain, "rule": rule, "verdict": verdict}


def P(table: str, chain: str, policy: str) -> dict[str, Any]:
    return {"table": table, "chain": chain, "policy": policy}


def rules(*tables: str) -> str:
    return "\n".join(tables) + "\n"


def table(name: str, policies: dict[str, str], body: str = "", chains: tuple[str, ...] = ()) -> str:
    lines = [f"*{name}"]
    lines += [f":{c} {p} [0:0]" for c, p in policies.items()]
    lines += [f":{c} - [0:0]" for c in chains]
    lines += [ln.strip() for ln in body.strip().splitlines() if ln.strip()]
    return "\n".join(lines + ["COMMIT"])


NAT = {"PREROUTING": "ACCEPT", "INPUT": "ACCEPT", "OUTPUT": "ACCEPT", "POSTROUTING": "ACCEPT"}
FILTER_ACCEPT = {"INPUT": "ACCEPT", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT"}


def conv(ruleset: str, packet: dict[str, Any], packets: list[dict[str, Any]]) -> Scenario:
    return scenario_from_dict({"ruleset": ruleset, "host": HOST, "packet": packet, "packets": packets})


def both(sc: Scenario) -> tuple[list[KernelPacket], Conversation]:
    kernel = replay_conversation(sc)
    engine = trace_conversation_scenario(sc)
    raw = "\n\n".join("\n".join(k.trace.raw) if k.trace else k.not_sent for k in kernel)
    assert len(kernel) == len(engine.packets)
    for i, (k, e) in enumerate(zip(kernel, engine.packets, strict=True)):
        assert (k.trace is None) == (e.trace is None), f"packet {i + 1}: kernel {k.not_sent!r}\n{raw}"
        if k.trace is None or e.trace is None:
            continue
        diff = hops_diff(list(k.trace.hops), e.trace.hops())
        assert not diff, f"packet {i + 1} ({e.dir}) differs from the kernel:\n{diff}\n{raw}"
        assert k.trace.verdict == e.trace.verdict, f"packet {i + 1}\n{raw}"
        related = e.trace.related
        assert (k.related is None) == (related is None), f"packet {i + 1}: the host's answer\n{raw}"
        if k.related is not None and related is not None:
            diff = hops_diff(list(k.related.hops), related.hops())
            assert not diff, f"packet {i + 1}: the host's answer differs:\n{diff}\n" + "\n".join(k.related.raw)
            header = {k: v for k, v in related.packet_out.header().items() if not k.startswith("icmp_")}
            assert k.related.packet_out == header, "\n".join(k.related.raw)
    return kernel, engine


HANDSHAKE = [{"dir": "reply", "tcp_flags": "SA"}, {"dir": "original", "tcp_flags": "A"},
             {"dir": "original", "tcp_flags": "PA"}, {"dir": "reply", "tcp_flags": "PA"},
             {"dir": "original", "tcp_flags": "FA"}]


def test_dnat_forward_reply_is_un_dnated_and_skips_nat() -> None:
    ruleset = rules(
        table("nat", NAT, f"-A PREROUTING -d {VIP}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {SERVER}:8080"),
        table("filter", {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}, """
            -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
            -A FORWARD -m conntrack --ctstate NEW -m conntrack --ctorigdst 198.18.0.10 -j ACCEPT
            -A FORWARD -j LOG
        """),
    )
    sc = conv(ruleset, {"proto": "tcp", "src": CLIENT, "sport": 40001, "dst": VIP, "dport": 80, "in_iface": "eth0"},
              HANDSHAKE)
    kernel, engine = both(sc)
    assert kernel[1].trace is not None and list(kernel[1].trace.hops) == [H("filter", "FORWARD", 1, "ACCEPT")]
    reply = engine.packets[1]
    assert reply.ctstate == "ESTABLISHED" and reply.ctdir == "REPLY"
    assert reply.trace is not None and reply.trace.packet_out.header()["src"] == VIP
    assert "ASSURED" in engine.packets[2].entry and "ASSURED" in engine.packets[2].ctstatus


def test_snat_forward_reply_is_un_snated_in_prerouting() -> None:
    ruleset = rules(
        table("raw", {"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"},
              "-A PREROUTING -m addrtype --dst-type LOCAL -j LOG"),
        table("nat", NAT, "-A POSTROUTING -o eth1 -j MASQUERADE"),
        table("filter", FILTER_ACCEPT, "-A FORWARD -d 10.88.1.2/32 -m conntrack --ctstate ESTABLISHED -j ACCEPT"),
    )
    sc = conv(ruleset, {"proto": "tcp", "src": CLIENT, "sport": 40002, "dst": SERVER, "dport": 80, "in_iface": "eth0"},
              HANDSHAKE[:4])
    kernel, engine = both(sc)
    # The reply is addressed to the MASQUERADE address (LOCAL in raw), then
    # un-SNATed before filter FORWARD sees it.
    assert kernel[1].trace is not None
    assert next(iter(kernel[1].trace.hops)) == H("raw", "PREROUTING", 1, "CONTINUE")
    assert engine.packets[1].trace is not None
    assert engine.packets[1].trace.packet_out.header()["dst"] == CLIENT


def test_established_before_drop_policy_on_input() -> None:
    ruleset = rules(table("filter", {"INPUT": "DROP", "FORWARD": "DROP", "OUTPUT": "DROP"}, """
        -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
        -A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -j ACCEPT
        -A OUTPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
    """))
    sc = conv(ruleset, {"proto": "tcp", "src": CLIENT, "sport": 40003, "dst": LOCAL, "dport": 22, "in_iface": "eth0"},
              HANDSHAKE)
    _kernel, engine = both(sc)
    assert [p.ctstate for p in engine.packets] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
                                                   "ESTABLISHED", "ESTABLISHED"]


def test_new_only_rule_drops_the_syn_ack_and_later_packets_are_not_sent() -> None:
    ruleset = rules(table("filter", {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"},
                          "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT"))
    sc = conv(ruleset, {"proto": "tcp", "src": CLIENT, "sport": 40004, "dst": SERVER, "dport": 80, "in_iface": "eth0"},
              HANDSHAKE[:3])
    kernel, engine = both(sc)
    assert kernel[1].trace is not None and kernel[1].trace.verdict == "DROP"
    assert engine.packets[1].trace is not None
    assert engine.packets[1].trace.fate is not None
    assert "timeout" in engine.packets[1].trace.fate.summary
    assert [p.sent for p in engine.packets] == [True, True, False, False]


def test_connmark_restored_on_replies() -> None:
    ruleset = rules(
        table("mangle", {"PREROUTING": "ACCEPT", "INPUT": "ACCEPT", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT",
                         "POSTROUTING": "ACCEPT"}, """
            -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff
            -A PREROUTING -m mark --mark 0x7/0xff -j LOG
            -A PREROUTING -m conntrack --ctstate NEW -i eth0 -j MARK --set-xmark 0x7/0xff
            -A PREROUTING -m conntrack --ctstate NEW -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff
            -A FORWARD -m connmark --mark 0x7/0xff -m conntrack --ctdir REPLY -j LOG
        """),
        table("filter", FILTER_ACCEPT),
    )
    sc = conv(ruleset, {"proto": "udp", "src": CLIENT, "sport": 40005, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
              [{"dir": "reply"}, {"dir": "original"}, {"dir": "reply"}])
    kernel, engine = both(sc)
    assert kernel[1].trace is not None
    assert H("mangle", "FORWARD", 1, "CONTINUE") in list(kernel[1].trace.hops)
    assert "mark=7" in engine.packets[1].entry


def test_notrack_both_ways_replies_stay_untracked() -> None:
    ruleset = rules(
        table("raw", {"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, """
            -A PREROUTING -p udp -m udp --dport 53 -j CT --notrack
            -A PREROUTING -p udp -m udp --sport 53 -j CT --notrack
        """),
        table("filter", {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}, """
            -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
            -A FORWARD -m conntrack --ctstate UNTRACKED -p udp -m udp --dport 53 -j ACCEPT
        """),
    )
    sc = conv(ruleset, {"proto": "udp", "src": CLIENT, "sport": 40006, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
              [{"dir": "reply"}])
    kernel, engine = both(sc)
    assert kernel[1].trace is not None and kernel[1].trace.verdict == "DROP"
    assert engine.packets[1].ctstate == "UNTRACKED"


def test_notrack_one_way_udp_answer_starts_its_own_entry() -> None:
    ruleset = rules(
        table("raw", {"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, "-A PREROUTING -i eth0 -p udp -j NOTRACK"),
        table("filter", FILTER_ACCEPT, """
            -A FORWARD -m conntrack --ctstate NEW --ctdir ORIGINAL -j LOG
            -A FORWARD -m conntrack --ctstatus CONFIRMED -j LOG
        """),
    )
    sc = conv(ruleset, {"proto": "udp", "src": CLIENT, "sport": 40007, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
              [{"dir": "reply"}, {"dir": "reply"}])
    kernel, engine = both(sc)
    assert [p.ctstate for p in engine.packets] == ["UNTRACKED", "NEW", "NEW"]
    assert kernel[2].trace is not None and H("filter", "FORWARD", 2, "CONTINUE") in list(kernel[2].trace.hops)


def test_syn_ack_answering_an_untracked_syn_is_invalid() -> None:
    ruleset = rules(
        table("raw", {"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, "-A PREROUTING -i eth0 -p tcp -j NOTRACK"),
        table("filter", {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}, """
            -A FORWARD -m state --state UNTRACKED -j ACCEPT
            -A FORWARD -m state --state NEW -j ACCEPT
        """),
    )
    sc = conv(ruleset, {"proto": "tcp", "src": CLIENT, "sport": 40008, "dst": SERVER, "dport": 80, "in_iface": "eth0"},
              HANDSHAKE[:2])
    kernel, engine = both(sc)
    assert engine.packets[1].ctstate == "INVALID"
    assert kernel[1].trace is not None
    assert list(kernel[1].trace.hops) == [P("raw", "PREROUTING", "ACCEPT"), P("filter", "FORWARD", "DROP")]


def test_redirect_on_output_to_a_local_listener() -> None:
    ruleset = rules(
        table("nat", NAT, "-A OUTPUT -d 198.18.0.10/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080"),
        table("filter", {"INPUT": "DROP", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}, """
            -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT
            -A INPUT -i lo -m conntrack --ctstate NEW -j ACCEPT
        """),
    )
    sc = conv(ruleset, {"proto": "tcp", "src": LOCAL, "sport": 40009, "dst": VIP, "dport": 80}, HANDSHAKE[:4])
    _kernel, engine = both(sc)
    assert engine.packets[1].trace is not None
    assert engine.packets[1].trace.packet_out.header()["src"] == VIP


def test_udp_dns_through_a_kube_proxy_style_service() -> None:
    ruleset = rules(
        table("nat", NAT, f"""
            -A PREROUTING -j KUBE-SERVICES
            -A OUTPUT -j KUBE-SERVICES
            -A POSTROUTING -j KUBE-POSTROUTING
            -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
            -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
            -A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
            -A KUBE-POSTROUTING -j MASQUERADE
            -A KUBE-SERVICES -d {VIP}/32 -p udp -m udp --dport 53 -j KUBE-SVC-DNS
            -A KUBE-SVC-DNS ! -s 10.244.0.0/16 -d {VIP}/32 -p udp -m udp --dport 53 -j KUBE-MARK-MASQ
            -A KUBE-SVC-DNS -j KUBE-SEP-A
            -A KUBE-SEP-A -p udp -m udp -j DNAT --to-destination {SERVER}:53
        """, ("KUBE-MARK-MASQ", "KUBE-POSTROUTING", "KUBE-SEP-A", "KUBE-SERVICES", "KUBE-SVC-DNS")),
        table("filter", {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}, """
            -A FORWARD -m conntrack --ctstate INVALID -j DROP
            -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
            -A FORWARD -m conntrack --ctstate NEW,DNAT -j ACCEPT
        """),
    )
    for packet in ({"proto": "udp", "src": CLIENT, "sport": 40010, "dst": VIP, "dport": 53, "in_iface": "eth0"},
                   {"proto": "udp", "src": LOCAL, "sport": 40011, "dst": VIP, "dport": 53}):
        sc = conv(ruleset, packet, [{"dir": "reply"}, {"dir": "original"}, {"dir": "reply"}])
        _kernel, engine = both(sc)
        assert engine.packets[1].trace is not None
        assert engine.packets[1].trace.packet_out.header()["src"] == VIP
        assert "ASSURED" not in engine.packets[3].entry


def test_icmp_echo_through_masquerade() -> None:
    ruleset = rules(
        table("nat", NAT, "-A POSTROUTING -o eth2 -j MASQUERADE"),
        table("filter", {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}, """
            -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
            -A FORWARD -p icmp -m icmp --icmp-type 8 -m conntrack --ctstate NEW -j ACCEPT
        """),
    )
    sc = conv(ruleset, {"proto": "icmp", "src": CLIENT, "dst": "203.0.113.7", "in_iface": "eth0"},
              [{"dir": "reply", "icmp_type": 0}, {"dir": "original", "icmp_type": 8}, {"dir": "reply", "icmp_type": 0}])
    _kernel, engine = both(sc)
    assert [p.ctstate for p in engine.packets] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED"]


def test_server_reset_closes_the_entry() -> None:
    ruleset = rules(table("filter", FILTER_ACCEPT, """
        -A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j LOG
    """))
    sc = conv(ruleset, {"proto": "tcp", "src": CLIENT, "sport": 40012, "dst": SERVER, "dport": 80, "in_iface": "eth0"},
              [{"dir": "reply", "tcp_flags": "SA"}, {"dir": "reply", "tcp_flags": "RA"}])
    _kernel, engine = both(sc)
    assert engine.packets[2].ctstate == "ESTABLISHED"
    assert engine.packets[2].entry.startswith("tcp 6 CLOSE ")


@pytest.mark.parametrize("how", ["icmp-port-unreachable", "icmp-host-prohibited", "tcp-reset"])
def test_reject_in_forward_of_a_dnated_packet_answers_related(how: str) -> None:
    proto = "tcp"
    # raw OUTPUT already sees the RST and the ICMP error RELATED: they leave
    # with the rejected packet's connection attached.
    ruleset = rules(
        table("raw", {"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, """
            -A OUTPUT -m conntrack --ctstate INVALID -j LOG
            -A OUTPUT -m conntrack --ctstate RELATED -j LOG
        """),
        table("nat", NAT, f"""
            -A PREROUTING -d {VIP}/32 -p {proto} -j DNAT --to-destination {SERVER}:8080
            -A POSTROUTING -p tcp -j LOG
        """),
        table("filter", FILTER_ACCEPT, f"""
            -A FORWARD -p {proto} -j REJECT --reject-with {how}
            -A OUTPUT -m conntrack --ctstate RELATED --ctdir REPLY -j LOG
        """),
    )
    sc = conv(ruleset, {"proto": proto, "src": CLIENT, "sport": 40013, "dst": VIP, "dport": 80, "in_iface": "eth0"},
              [{"dir": "reply", "tcp_flags": "SA"}])
    kernel, engine = both(sc)
    assert kernel[0].related is not None
    assert H("filter", "OUTPUT", 1, "CONTINUE") in list(kernel[0].related.hops)
    assert H("raw", "OUTPUT", 2, "CONTINUE") in list(kernel[0].related.hops)
    fate = engine.first.fate
    assert fate is not None and fate.target == "REJECT"


def test_udp_rejected_on_input_after_the_first_datagram() -> None:
    ruleset = rules(
        table("filter", {"INPUT": "ACCEPT", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT"}, """
            -A INPUT -p udp -m conntrack --ctstate ESTABLISHED -j REJECT
            -A OUTPUT -m conntrack --ctstate RELATED -j LOG
        """),
    )
    sc = conv(ruleset, {"proto": "udp", "src": CLIENT, "sport": 40014, "dst": LOCAL, "dport": 53, "in_iface": "eth0"},
              [{"dir": "reply"}, {"dir": "original"}])
    kernel, engine = both(sc)
    assert kernel[2].related is not None and engine.packets[2].trace is not None
    assert engine.packets[2].trace.fate is not None
    assert engine.packets[2].trace.fate.summary.startswith("connection refused")


def test_nft_dnat_and_ct_state_across_packets() -> None:
    # A native nft listing only: the reply is un-DNATed by the NAT hook at
    # postrouting although no nat chain sits there.
    listing = f"""table inet fw {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {VIP} tcp dport 80 dnat ip to {SERVER}:8080
  }}
  chain fw_forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct status dnat ct state new accept
  }}
}}
"""
    sc = scenario_from_dict({"ruleset": "", "nftables": listing, "host": HOST,
                             "packet": {"proto": "tcp", "src": CLIENT, "sport": 40015, "dst": VIP, "dport": 80,
                                        "in_iface": "eth0"},
                             "packets": HANDSHAKE[:3]})
    kernel, engine = both(sc)
    assert kernel[1].trace is not None
    assert list(kernel[1].trace.hops) == [{"family": "inet", "table": "fw", "chain": "fw_forward", "rule": 1,
                                           "verdict": "ACCEPT"}]
    assert engine.packets[1].trace is not None
    assert engine.packets[1].trace.packet_out.header()["src"] == VIP
