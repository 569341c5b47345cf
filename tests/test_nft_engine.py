"""Native nftables chains in the walk: order, verdicts, sets, NAT (scenario-v2 §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netviz.engine.nft.parse_text import parse_nft_text
from netviz.engine.parser import parse_ruleset
from netviz.engine.pipeline import trace_dicts

DATA = Path(__file__).parent / "data" / "realworld-nft"

HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["192.168.0.2/24"]},
        {"name": "eth1", "addrs": ["10.180.0.254/24"]},
    ],
    "routes": [],
}


def trace(nft: str, packet: dict[str, Any], iptables: str = "", host: dict[str, Any] | None = None) -> Any:
    return trace_dicts(parse_ruleset(iptables), host or HOST, packet, "ipv4", nft=parse_nft_text(nft))


def syn(dst: str = "192.168.0.2", dport: int = 22, **kw: Any) -> dict[str, Any]:
    return {"proto": "tcp", "src": "192.168.0.50", "dst": dst, "dport": dport, "in_iface": "eth0", **kw}


def test_a_firewalld_drop_beside_an_iptables_dump_is_a_drop_by_the_firewalld_rule() -> None:
    iptables = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n"
    nft = (
        "table inet firewalld {\n\tchain filter_INPUT {\n"
        "\t\ttype filter hook input priority filter + 10; policy accept;\n"
        "\t\tct state established,related accept\n"
        "\t\ttcp dport 22 reject with icmpx type admin-prohibited\n\t}\n}\n"
    )
    t = trace(nft, syn(), iptables)
    assert t.verdict == "DROP"
    assert t.hops() == [
        {"table": "filter", "chain": "INPUT", "rule": 1, "verdict": "ACCEPT"},
        {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "rule": 2, "verdict": "DROP"},
    ]
    assert "firewalld" in t.summary


def test_equal_priorities_run_the_listing_first_last_listed_first() -> None:
    nft = (
        "table inet zeta {\n"
        "\tchain in1 {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tcounter\n\t}\n"
        "\tchain in2 {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tcounter\n\t}\n}\n"
        "table ip alpha {\n\tchain in0 {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n"
    )
    iptables = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
    t = trace(nft, syn(), iptables)
    assert [(h.get("family"), h["chain"]) for h in t.hops()] == [
        ("ip", "in0"), ("inet", "in2"), ("inet", "in2"), ("inet", "in1"), ("inet", "in1"), (None, "INPUT"),
    ]


def test_a_verdict_map_jumps_and_goto_then_the_end_returns_to_the_base_chains_policy() -> None:
    nft = (
        "table ip t {\n"
        "\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n"
        "\t\ttcp dport vmap { 22 : goto ssh, 80 : jump web }\n\t\tcounter\n\t}\n"
        "\tchain ssh {\n\t\tip saddr 10.0.0.0/8 accept\n\t}\n"
        "\tchain web {\n\t\taccept\n\t}\n}\n"
    )
    t = trace(nft, syn(dport=22))
    assert t.hops() == [
        {"family": "ip", "table": "t", "chain": "input", "rule": 1, "verdict": "GOTO:ssh"},
        {"family": "ip", "table": "t", "chain": "input", "policy": "DROP"},
    ]
    t = trace(nft, syn(dport=443))
    assert [h.get("rule") for h in t.hops()] == [2, None]
    rule1 = next(s for s in t.steps if s.rule == 1)
    assert "443" in rule1.reason and "not in" in rule1.reason


def test_named_sets_with_intervals_and_the_deciding_expression() -> None:
    nft = (
        "table inet f {\n\tset allowed {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
        "\t\telements = { 10.0.0.0/8, 192.168.0.40-192.168.0.60 }\n\t}\n"
        "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
        "\t\tip saddr != @allowed drop\n\t\ttcp dport 443 accept\n\t}\n}\n"
    )
    t = trace(nft, syn(dport=22))
    steps = [s for s in t.steps if s.family]
    assert steps[0].reason == "ip saddr 192.168.0.50 in @allowed"
    assert steps[1].reason == "tcp dport 22 ≠ 443"
    t = trace(nft, {**syn(), "src": "192.168.1.1"})
    assert t.verdict == "DROP" and t.steps[-1].reason == "ip saddr 192.168.1.1 not in @allowed"


def test_nat_chains_run_at_the_nat_hook_only_with_conntrack() -> None:
    nft = (
        "table ip n {\n"
        "\tchain pre {\n\t\ttype nat hook prerouting priority -190; policy accept;\n"
        "\t\ttcp dport 8080 dnat to 10.180.0.1:80\n\t}\n"
        "\tchain f {\n\t\ttype filter hook prerouting priority -150; policy accept;\n\t\tcounter\n\t}\n}\n"
    )
    t = trace(nft, syn(dport=8080))
    # Seen: filter -150 ran before nat -190 (the NAT hook sits at -100).
    assert [h["chain"] for h in t.hops()] == ["f", "f", "pre"]
    assert str(t.packet_out.dst) == "10.180.0.1" and t.packet_out.dport == 80
    assert t.path == "forward"
    # Without anything using conntrack a nat chain is never consulted.
    t = trace(nft.replace("tcp dport 8080 dnat to 10.180.0.1:80", "counter"), syn(dport=8080))
    assert [h["chain"] for h in t.hops()] == ["f", "f"]


def test_kube_proxy_service_is_dnated_to_its_endpoint_and_masqueraded() -> None:
    nft = (DATA / "kube-proxy-nft-overall.nft").read_text()
    t = trace(nft, syn(dst="172.30.0.41", dport=80))
    assert t.verdict == "ACCEPT" and str(t.packet_out.dst) == "10.180.0.1"
    assert str(t.packet_out.src) == "10.180.0.254"  # masquerade (mark 0x4000 set for non-cluster sources)
    chains = [h["chain"] for h in t.hops()]
    assert chains[:4] == ["filter-prerouting-pre-dnat", "filter-prerouting-pre-dnat", "nat-prerouting", "services"]
    assert {"family": "ip", "table": "kube-proxy", "chain": "masquerading", "rule": 3, "verdict": "ACCEPT"} in t.hops()


def test_an_unknown_statement_makes_the_rule_uncertain_never_silently_decided() -> None:
    nft = (
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
        "\t\tsocket transparent 1 drop\n\t}\n}\n"
    )
    t = trace(nft, syn())
    assert t.uncertain == (("inet t", "input", 1),)
    assert t.steps[-2].result.value == "unknown"


def test_meta_mark_set_and_a_route_chain_reroutes_locally_generated_packets() -> None:
    host = {**HOST, "rules": ["from all fwmark 0x1 lookup 100"],
            "routes": ["default via 192.168.0.1 dev eth0", "default via 10.180.0.1 dev eth1 table 100"]}
    nft = (
        "table ip m {\n\tchain out {\n\t\ttype route hook output priority mangle; policy accept;\n"
        "\t\ttcp dport 443 meta mark set 0x1\n\t}\n}\n"
    )
    t = trace(nft, {"proto": "tcp", "src": "192.168.0.2", "dst": "198.51.100.7", "dport": 443}, host=host)
    assert t.packet_out.out_iface == "eth1" and t.packet_out.mark == 1
    assert t.hops()[0]["verdict"] == "CONTINUE"


def test_iifname_in_postrouting_names_the_input_device_of_a_forwarded_packet() -> None:
    # Found by the kernel check on Docker's listing (`iifname vmap @…` in
    # nat-POSTROUTING): ip_output() hands skb->dev to POSTROUTING as `in`.
    nft = (
        "table ip t {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        '\t\tiifname "eth0" masquerade\n\t}\n'
        "\tchain fwd {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state new counter\n\t}\n}\n"
    )
    t = trace(nft, syn(dst="10.180.0.9"))
    assert t.hops()[-1] == {"family": "ip", "table": "t", "chain": "post", "rule": 1, "verdict": "ACCEPT"}
    assert str(t.packet_out.src) == "10.180.0.254"


def test_the_generated_kube_proxy_listing_dnats_each_service_to_its_endpoint() -> None:
    from netviz.testing.gennft import HOST as KHOST
    from netviz.testing.gennft import cluster_ip, endpoint_ip, generate_kube_nft

    nft = generate_kube_nft(50)
    for i in (0, 7, 49):
        t = trace(nft, syn(dst=cluster_ip(i), dport=80), host=KHOST)
        assert (str(t.packet_out.dst), t.packet_out.dport) == (endpoint_ip(i), 8080)
    t = trace(nft, syn(dst="172.30.9.9", dport=80), host=KHOST)
    assert t.verdict == "DROP"  # an unallocated ClusterIP


def test_conntrack_is_on_when_an_nft_rule_uses_ct_or_nat() -> None:
    from netviz.engine.nft.evaluate import compile_nft
    from netviz.engine.pipeline import conntrack_enabled
    from netviz.engine.ruleset import Family

    def on(rule: str) -> bool:
        nft = parse_nft_text(f"table inet t {{\n\tchain c {{\n\t\ttype filter hook input priority 0; policy accept;\n\t\t{rule}\n\t}}\n}}\n")
        return conntrack_enabled(parse_ruleset(""), compile_nft(nft, Family.IPV4))

    assert on("ct state new accept") and on("ct mark set 0x00000001") and on("meta mark set ct mark")
    assert not on("counter") and not on("meta mark set 0x00000001") and not on("notrack")


def test_a_parenthesised_flag_mask_is_read_as_the_kernel_reads_it() -> None:
    # Found by a hand-written kernel check: `tcp flags & (syn|ack) == syn`
    # (nft lists it as `tcp flags syn / syn,ack`) matched a SYN in the kernel.
    nft = (
        "table inet t {\n\tchain f {\n\t\ttype filter hook input priority 0; policy accept;\n"
        "\t\ttcp flags & (syn|ack) == syn counter\n\t\ttcp flags & (syn | ack) == syn|ack drop\n\t}\n}\n"
    )
    t = trace(nft, syn())
    assert t.hops() == [
        {"family": "inet", "table": "t", "chain": "f", "rule": 1, "verdict": "CONTINUE"},
        {"family": "inet", "table": "t", "chain": "f", "policy": "ACCEPT"},
    ]
    assert not t.uncertain


def test_reject_tells_the_sender_what_iptables_reject_would() -> None:
    nft = (
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
        "\t\ttcp dport 22 reject with tcp reset\n\t\ttcp dport 23 reject with icmpx type admin-prohibited\n"
        "\t\treject\n\t}\n}\n"
    )
    fates = [trace(nft, syn(dport=port)).fate for port in (22, 23, 80)]
    assert [(f.target, f.reject_with) for f in fates if f] == [
        ("REJECT", "tcp-reset"), ("REJECT", "icmp-admin-prohibited"), ("REJECT", "icmp-port-unreachable"),
    ]
