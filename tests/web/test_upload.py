"""The upload page: file and pasted dumps, ipsets, host profiles, bad dumps
refused inline with nothing stored, and the size limit."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from webdumps import demo_text, shared_dump

from netviz import models

pytestmark = pytest.mark.django_db

BAD_DUMP = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -m comment --comment "<script>alert(1)</script>" -j NOSUCHCHAIN
COMMIT
"""


def counts() -> tuple[int, ...]:
    return (
        models.Ruleset.objects.count(),
        models.Table.objects.count(),
        models.Chain.objects.count(),
        models.Rule.objects.count(),
        models.IPSet.objects.count(),
        models.HostProfile.objects.count(),
    )


def test_it_shows_the_form(client: Client) -> None:
    r = client.get(reverse("netviz:upload"))
    assert r.status_code == 200
    body = r.content.decode()
    assert 'name="dump_file"' in body and "autofocus" in body
    assert 'hx-post="/upload/"' in body and 'hx-encoding="multipart/form-data"' in body
    assert "htmx:xhr:progress" in body
    assert "ipset save" in body and "ip -br addr" in body


def test_it_uploads_a_file_and_redirects_to_the_ruleset(client: Client) -> None:
    dump = shared_dump("kube-proxy-flannel-centos7-FIXED.rules")
    r = client.post(reverse("netviz:upload"), {"dump_file": SimpleUploadedFile("node7.rules", dump.encode())})
    rs = models.Ruleset.objects.get()
    assert r.status_code == 302 and r["Location"] == reverse("netviz:ruleset", args=[rs.pk])
    assert rs.name == "node7.rules"
    assert rs.source == dump
    assert rs.rule_count == 97
    assert rs.owner is None and rs.is_public


def test_it_uploads_pasted_text_with_ipsets_and_a_host(client: Client) -> None:
    r = client.post(
        reverse("netviz:upload"),
        {
            "name": "calico node 3",
            "dump_text": demo_text("calico-node"),
            "ipsets_text": demo_text("calico-node", "ipsets.ipset"),
            "family": "ipv4",
            "host_interfaces": "lo UNKNOWN 127.0.0.1/8 ::1/128\neth0 UP 10.240.0.4/16 fe80::1/64\ncali112d888c0c2@if3 UP fe80::ecee:eeff:feee:eeee/64",
            "host_routes": "default via 10.240.0.1 dev eth0 proto dhcp src 10.240.0.4 metric 100\n10.244.0.10 dev cali112d888c0c2 scope link",
        },
    )
    assert r.status_code == 302
    rs = models.Ruleset.objects.get(name="calico node 3")
    assert rs.ipsets.count() == 2
    host = rs.hosts.get()
    names = [i["name"] for i in host.interfaces]
    assert names == ["lo", "eth0", "cali112d888c0c2"]
    assert "10.240.0.4/16" in host.interfaces[1]["addrs"]
    assert host.routes[0].startswith("default via 10.240.0.1 dev eth0")
    assert host.routes[1] == "10.244.0.10 dev cali112d888c0c2"


def test_it_reads_full_ip_addr_output(client: Client) -> None:
    ip_addr = """1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
2: enp0s8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000
    link/ether 08:00:27:70:88:4d brd ff:ff:ff:ff:ff:ff
    inet 10.0.3.121/24 brd 10.0.3.255 scope global enp0s8
3: docker0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default
    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0
"""
    r = client.post(
        reverse("netviz:upload"),
        {"dump_text": demo_text("docker-host"), "host_interfaces": ip_addr, "host_routes": "default via 10.0.3.1 dev enp0s8"},
    )
    assert r.status_code == 302
    host = models.HostProfile.objects.get()
    assert {"name": "enp0s8", "addrs": ["10.0.3.121/24"]} in host.interfaces
    assert {"name": "docker0", "addrs": ["172.17.0.1/16"]} in host.interfaces


def test_it_answers_htmx_with_a_client_redirect(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": demo_text("docker-host")}, headers={"HX-Request": "true"})
    rs = models.Ruleset.objects.get()
    assert r.status_code == 200
    assert r["HX-Redirect"] == reverse("netviz:ruleset", args=[rs.pk])


def test_it_refuses_a_bad_dump_showing_line_column_and_reason(client: Client) -> None:
    before = counts()
    r = client.post(reverse("netviz:upload"), {"dump_text": BAD_DUMP})
    assert r.status_code == 400
    assert counts() == before
    body = r.content.decode()
    assert "line 4" in body
    assert "NOSUCHCHAIN" in body
    # The offending line, escaped, with a caret under the column.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)</script>" not in body
    assert '<span class="caret">' in body
    assert "Nothing was stored" in body


def test_it_refuses_a_bad_dump_inline_for_htmx(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": BAD_DUMP}, headers={"HX-Request": "true"})
    # 200 so htmx swaps the form in (a plain POST gets 400, tested above).
    assert r.status_code == 200
    body = r.content.decode()
    # Only the form partial, to swap in place: no page layout around it.
    assert body.lstrip().startswith('<form id="upload-form"')
    assert "<html" not in body
    assert 'id="parse-error"' in body
    assert models.Ruleset.objects.count() == 0


def test_it_puts_the_caret_under_the_bad_column(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": BAD_DUMP})
    ctx = r.context["parse_error"]
    line = "-A INPUT -m comment --comment \"<script>alert(1)</script>\" -j NOSUCHCHAIN"
    assert ctx["text"] == line
    assert ctx["line"] == 4
    assert line[len(ctx["caret"]) - 1 :].startswith("NOSUCHCHAIN")


def test_it_refuses_bad_ipsets_naming_the_ipset_text(client: Client) -> None:
    r = client.post(
        reverse("netviz:upload"),
        {"dump_text": demo_text("calico-node"), "ipsets_text": "create s hash:net family inet\nadd s 10.0.0.0/99\n"},
    )
    assert r.status_code == 400
    assert "The ipset text could not be read: line 2" in r.content.decode()
    assert models.Ruleset.objects.count() == 0


def test_it_refuses_a_bad_host_profile_and_stores_nothing(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": demo_text("docker-host"), "host_interfaces": "eth0 10.0.0.999/24"})
    assert r.status_code == 400
    assert "Cannot read the interfaces" in r.content.decode()
    assert counts() == (0, 0, 0, 0, 0, 0)


def test_it_asks_for_a_dump(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": "   "})
    assert r.status_code == 400
    assert "Choose an iptables-save file or paste the dump, or give an nft listing." in r.content.decode()


@override_settings(NETVIZ_MAX_UPLOAD=1000)
def test_it_refuses_a_file_over_the_size_limit(client: Client) -> None:
    dump = demo_text("kube-proxy-node")
    assert len(dump) > 1000
    r = client.post(reverse("netviz:upload"), {"dump_file": SimpleUploadedFile("big.rules", dump.encode())})
    assert r.status_code == 413
    body = r.content.decode()
    assert "big.rules is" in body and "the limit is 1000 bytes" in body
    assert models.Ruleset.objects.count() == 0


@override_settings(NETVIZ_MAX_UPLOAD=1000)
def test_it_refuses_pasted_text_over_the_size_limit(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": demo_text("kube-proxy-node")})
    assert r.status_code == 413
    assert "the limit is 1000 bytes" in r.content.decode()


@override_settings(NETVIZ_MAX_UPLOAD=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=2000)
def test_it_explains_a_request_too_big_to_read(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"dump_text": "x" * 5000})
    assert r.status_code == 413
    assert "larger than the limit of 1000 bytes" in r.content.decode()


def test_it_refuses_routes_through_unknown_interfaces(client: Client) -> None:
    r = client.post(
        reverse("netviz:upload"),
        {"dump_text": demo_text("docker-host"), "host_interfaces": "eth0 10.0.0.5/24", "host_routes": "10.9.0.0/16 dev nosuch0"},
    )
    assert r.status_code == 400
    assert "The host profile does not add up" in r.content.decode()
    assert models.Ruleset.objects.count() == 0
