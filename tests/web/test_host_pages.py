"""The host profile page: shown to whoever sees the ruleset, edited by whoever
may edit it, `ip` output and `sysctl -a` lines pasted as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from webdumps import demo_text

from netviz import models, store

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parents[1] / "data" / "iproute"


@pytest.fixture
def owned(alice: Any) -> tuple[models.Ruleset, models.HostProfile]:
    ruleset = store.store_ruleset(name="node", source=demo_text("kube-proxy-node"), owner=alice)
    host = store.store_host(name="node host", interfaces=[{"name": "eth0", "addrs": ["10.61.0.5/24"]}],
                            routes=["default via 10.61.0.1 dev eth0"], ruleset=ruleset, owner=alice)
    return ruleset, host


def _url(ruleset: models.Ruleset, host: models.HostProfile, edit: bool = False) -> str:
    return reverse("netviz:host_edit" if edit else "netviz:host", args=[ruleset.pk, host.pk])


def test_it_saves_pasted_ip_json_and_sysctl_lines(client: Client, alice: Any, owned: Any) -> None:
    ruleset, host = owned
    client.force_login(alice)
    page = client.get(_url(ruleset, host)).content.decode()
    assert 'name="sysctls"' in page and "default via 10.61.0.1 dev eth0" in page
    r = client.post(_url(ruleset, host, edit=True), {
        "name": "node host",
        "interfaces": (DATA / "addr.json").read_text(),
        "routes": (DATA / "route4.txt").read_text(),
        "rules": (DATA / "rule.txt").read_text(),
        "sysctls": "net.ipv4.conf.all.rp_filter = 2\nnet.ipv4.conf.eth0.rp_filter = 1\n"
                   "net.ipv4.conf.all.route_localnet = 1\nnet.bridge.bridge-nf-call-iptables = 0\n",
    })
    assert r.status_code == 302
    host.refresh_from_db()
    assert host.sysctls["net.ipv4.conf.eth0.rp_filter"] == "1"
    assert [i["name"] for i in host.interfaces][:2] == ["eth0", "docker0"]
    assert "10.63.0.0/16 proto static nexthop via 10.61.0.2 dev eth0 weight 1 nexthop via 10.61.0.3 dev eth0 weight 2" in host.routes
    assert host.rules == ["pref 1000 from all fwmark 0x4000/0x4000 lookup 100"]
    assert host.as_scenario_host()["sysctls"] == host.sysctls
    page = client.get(_url(ruleset, host)).content.decode()
    # The combined values: rp_filter max(2, 1) = 2 on eth0, route_localnet on everywhere.
    table = page[page.index('id="effective-sysctls"'):]
    eth0 = table[table.index("<code>eth0</code>"):].split("</tr>")[0]
    assert [c.split("</td>")[0] for c in eth0.split("<td>")[1:]] == ["1", "2", "1", "0", "0"]
    assert "bridge-nf-call-iptables: 0" in page


def test_bad_input_is_refused_inline_and_nothing_changes(client: Client, alice: Any, owned: Any) -> None:
    ruleset, host = owned
    client.force_login(alice)
    r = client.post(_url(ruleset, host, edit=True), {
        "name": "x", "interfaces": "eth0 10.61.0.5/24", "routes": "10.9.0.0/16 dev wlan7",
        "rules": "", "sysctls": "net.ipv4.conf.all.rp_filter = strict"})
    assert r.status_code == 400
    assert "not a number" in r.content.decode()
    r = client.post(_url(ruleset, host, edit=True), {
        "name": "x", "interfaces": "eth0 10.61.0.5/24", "routes": "10.9.0.0/16 dev wlan7", "rules": "", "sysctls": ""})
    assert r.status_code == 400 and "no interface named" in r.content.decode()
    host.refresh_from_db()
    assert host.name == "node host"


def test_others_see_it_read_only_or_not_at_all(client: Client, owned: Any, django_user_model: Any) -> None:
    ruleset, host = owned
    bob = django_user_model.objects.create_user("bob", password="pw-bob-1234")
    client.force_login(bob)
    assert client.get(_url(ruleset, host)).status_code == 404  # private ruleset
    assert client.post(_url(ruleset, host, edit=True), {"name": "mine"}).status_code == 404
    ruleset.is_public = True
    ruleset.save()
    page = client.get(_url(ruleset, host)).content.decode()
    assert "node host" in page and 'name="sysctls"' not in page
    assert client.post(_url(ruleset, host, edit=True), {"name": "mine"}).status_code == 404


def test_uploaded_names_are_escaped(client: Client, alice: Any, owned: Any) -> None:
    ruleset, host = owned
    host.interfaces = [{"name": "<script>x</script>", "addrs": ["10.1.0.1/24"]}]
    host.sysctls = {"net.ipv4.conf.<b>.rp_filter": "1"}
    host.save()
    client.force_login(alice)
    page = client.get(_url(ruleset, host)).content.decode()
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "<b>" not in page


def test_an_editor_adds_a_profile_to_a_ruleset_without_one(client: Client, alice: Any) -> None:
    ruleset = store.store_ruleset(name="bare", source=demo_text("kube-proxy-node"), owner=alice)
    client.force_login(alice)
    assert "Add a host profile" in client.get(reverse("netviz:ruleset", args=[ruleset.pk])).content.decode()
    r = client.post(reverse("netviz:host_new", args=[ruleset.pk]))
    host = ruleset.hosts.get()
    assert r.status_code == 302 and r["Location"] == _url(ruleset, host)
    client.logout()
    assert client.post(reverse("netviz:host_new", args=[ruleset.pk])).status_code == 404
