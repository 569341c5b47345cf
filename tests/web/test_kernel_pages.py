"""Kernel pages: the kernel check partial, trace import, the live read page."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from netviz import jobs, models
from netviz.kernel import check as kernel_check
from netviz.kernel import kernel_available, netns
from netviz.kernel.replay import kernel_possible
from netviz.store import store_host, store_ruleset

pytestmark = pytest.mark.django_db

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WEB - [0:0]
-A FORWARD -i eth0 -o eth1 -j WEB
-A WEB -p tcp -m tcp --dport 22 -j DROP
-A WEB -p tcp -m u32 --u32 "0>>22&0x3C@12>>16&0x3F=0x2" -m tcp --dport 8080 -j DROP
-A WEB -p tcp -m tcp --dport 80 -m comment --comment "<b>web</b>" -j ACCEPT
COMMIT
"""
INTERFACES: list[dict[str, object]] = [{"name": "eth0", "addrs": ["10.1.0.1/24"]},
                                       {"name": "eth1", "addrs": ["10.2.0.1/24"]}]

# Captured from the kernel (xtables-monitor 1.8.9) for RULES_XT in a namespace.
RULES_XT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:X<i> - [0:0]
-A OUTPUT -p tcp -j ACCEPT
-A OUTPUT -j X<i>
-A X<i> -p udp -m udp --dport 5 -m comment --comment "<script>alert(1)</script>" -j DROP
-A X<i> -p udp -j MARK --set-xmark 0x7/0xffffffff
COMMIT
"""
XT = """\
PACKET: 2 733993b2 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55119 DF SPORT=47614 DPORT=5
 TRACE: 2 733993b2 filter:OUTPUT:rule:0x6:JUMP:X<i>  -4 -t filter -A OUTPUT -j X<i>
 TRACE: 2 733993b2 filter:X<i>:rule:0x7:DROP  -4 -t filter -A X<i> -p udp -m udp --dport 5 -m comment --comment "<script>alert(1)</script>" -j DROP
PACKET: 2 55f2a73a OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55249 DF SPORT=58930 DPORT=11
 TRACE: 2 55f2a73a filter:OUTPUT:rule:0x6:JUMP:X<i>  -4 -t filter -A OUTPUT -j X<i>
 TRACE: 2 55f2a73a filter:X<i>:rule:0x8:CONTINUE  -4 -t filter -A X<i> -p udp -j MARK --set-xmark 0x7/0xffffffff
 TRACE: 2 55f2a73a filter:OUTPUT:policy:ACCEPT
"""


@pytest.fixture
def web() -> models.Ruleset:
    rs = store_ruleset(name="web <fw>", source=RULES)
    store_host(name="two legs", interfaces=INTERFACES, routes=[], ruleset=rs)
    return rs


def _query(rs: models.Ruleset, dport: int) -> str:
    return urlencode({"proto": "tcp", "src": "10.1.0.5", "sport": "40000", "dst": "10.2.0.7",
                      "dport": str(dport), "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW",
                      "host": str(rs.hosts.first().pk)})  # type: ignore[union-attr]


def _kernel_url(rs: models.Ruleset, dport: int) -> str:
    return reverse("netviz:trace_kernel", args=[rs.pk]) + "?" + _query(rs, dport)


def _check(client: Client, rs: models.Ruleset, dport: int, htmx: bool = True) -> str:
    """Ask for a kernel check as a signed-in user, let a worker run the job
    (here, in this process), and return the job's page."""
    if not User.objects.filter(username="checker").exists():
        User.objects.create_user("checker", password="pw")
    client.login(username="checker", password="pw")
    response = client.post(_kernel_url(rs, dport), HTTP_HX_REQUEST="true")
    assert response.status_code == 202
    job = models.Job.objects.latest("pk")
    jobs.execute(job.pk, fork=False)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.get(job.get_absolute_url(), **headers).content.decode()


def _need_kernel() -> None:
    ok, why = kernel_available()
    if not ok:
        pytest.skip(f"kernel replay unavailable: {why}")


def test_it_shows_kernel_and_simulation_side_by_side(client: Client, web: models.Ruleset) -> None:
    _need_kernel()
    body = _check(client, web, 80)
    assert "<html" not in body  # a partial for htmx
    assert "agree" in body
    assert body.count("filter WEB rule 3 → ACCEPT") == 2  # kernel column and simulation column
    assert "hop-diff" not in body.split("verdict-row")[0]


def test_it_marks_where_the_kernel_differs(client: Client, web: models.Ruleset) -> None:
    _need_kernel()
    # u32 is not evaluated by the engine; the kernel drops the SYN at rule 2.
    body = _check(client, web, 8080)
    assert "kernel-differ" in body
    assert "hop-diff" in body
    assert "filter WEB rule 2 → DROP" in body
    assert "≠ differs" in body


def test_it_gives_a_full_page_without_htmx(client: Client, web: models.Ruleset) -> None:
    _need_kernel()
    body = _check(client, web, 80, htmx=False)
    assert "<html" in body and "Kernel check" in body
    assert "web &lt;fw&gt;" in body and "web <fw>" not in body


def test_it_says_why_when_the_kernel_cannot_be_asked(
    client: Client, web: models.Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's abilities are the environment, not the engine: pretend
    # this is an unprivileged server.
    reason = "not root (network namespaces and netfilter need CAP_NET_ADMIN)"
    monkeypatch.setattr(kernel_check, "kernel_available", lambda: (False, reason))
    body = _check(client, web, 80)
    assert "could not be asked here" in body and "not root" in body
    monkeypatch.setattr("netviz.templatetags.netviz_kernel.kernel_possible",
                        lambda: (False, reason))
    page = client.get(reverse("netviz:trace", args=[web.pk]) + "?" + _query(web, 80))
    assert page.status_code == 200


def test_it_refuses_an_incomplete_packet(client: Client, web: models.Ruleset) -> None:
    User.objects.create_user("checker", password="pw")
    client.login(username="checker", password="pw")
    url = reverse("netviz:trace_kernel", args=[web.pk]) + "?proto=tcp"
    body = client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "error-box" in body


def test_it_hides_a_private_ruleset(client: Client) -> None:
    owner = User.objects.create_user("alice", password="pw")
    rs = store_ruleset(name="private", source=RULES, owner=owner)
    User.objects.create_user("mallory", password="pw")
    client.login(username="mallory", password="pw")
    url = reverse("netviz:trace_kernel", args=[rs.pk]) + "?src=10.1.0.5&dst=10.2.0.7"
    assert client.post(url).status_code == 404


def test_it_shows_the_import_form_with_an_empty_state(client: Client) -> None:
    body = client.get(reverse("netviz:import_trace")).content.decode()
    assert "Paste a trace to see the real path" in body
    assert 'name="text"' in body and "autofocus" in body


def test_it_imports_a_pasted_trace_with_its_ruleset(client: Client) -> None:
    rs = store_ruleset(name="xt", source=RULES_XT)
    response = client.post(reverse("netviz:import_trace"), {"text": XT, "ruleset": rs.pk})
    assert response.status_code == 200
    body = response.content.decode()
    assert "2 packets in this trace" in body
    assert "<svg" in body  # the flow diagram and chain graphs
    assert "DROP" in body and "line 8" in body
    # User-supplied names and comments arrive escaped.
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "X&lt;i&gt;" in body


def test_it_switches_to_another_packet(client: Client) -> None:
    rs = store_ruleset(name="xt", source=RULES_XT)
    response = client.post(reverse("netviz:import_trace"),
                           {"text": XT, "ruleset": rs.pk, "packet": 1}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body
    assert "policy ACCEPT" in body
    assert "ACCEPT" in body.split("verdict-word")[1][:40]


def test_it_imports_an_uploaded_file_without_a_ruleset(client: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("trace.txt", XT.encode())
    response = client.post(reverse("netviz:import_trace"), {"upload": upload})
    body = response.content.decode()
    assert "No ruleset chosen" in body
    assert "2 packets in this trace" in body


def test_it_explains_text_that_is_not_a_trace(client: Client) -> None:
    body = client.post(reverse("netviz:import_trace"), {"text": "hello world\n"}).content.decode()
    assert "Cannot read this trace" in body and "no trace lines found" in body
    empty = client.post(reverse("netviz:import_trace"), {"text": ""}).content.decode()
    assert "Paste a kernel trace or upload a file" in empty


def test_it_does_not_offer_someone_elses_private_ruleset(client: Client) -> None:
    owner = User.objects.create_user("bob", password="pw")
    rs = store_ruleset(name="bob's secret", source=RULES_XT, owner=owner)
    body = client.get(reverse("netviz:import_trace")).content.decode()
    assert "bob&#x27;s secret" not in body
    response = client.post(reverse("netviz:import_trace"), {"text": XT, "ruleset": rs.pk})
    assert "Select a valid choice" in response.content.decode()


def test_it_keeps_the_live_page_for_staff(client: Client) -> None:
    url = reverse("netviz:import_live")
    assert client.get(url).status_code == 302  # anonymous → admin login
    User.objects.create_user("carol", password="pw")
    client.login(username="carol", password="pw")
    assert client.get(url).status_code == 302  # not staff
    User.objects.create_user("dave", password="pw", is_staff=True)
    client.login(username="dave", password="pw")
    response = client.get(url)
    assert response.status_code == 200
    assert "Read a live host" in response.content.decode()
    bad = client.post(url, {"netns": "x; rm -rf /", "family": "ipv4"})
    assert "letters, digits" in bad.content.decode()


def test_it_reads_a_namespace_and_stores_it_for_staff(client: Client) -> None:
    _need_kernel()
    if netns.missing_tools("iptables-nft-restore"):
        pytest.skip("iptables-nft-restore not installed")
    staff = User.objects.create_user("erin", password="pw", is_staff=True)
    client.login(username="erin", password="pw")
    with netns.namespace("nvz-web") as ns:
        netns.load(ns, RULES_XT.replace("<i>", "I").replace(
            ' -m comment --comment "<script>alert(1)</script>"', ""))
        response = client.post(reverse("netviz:import_live"),
                               {"netns": ns, "name": "live fw", "family": "ipv4"})
        # The kernel worker reads it (here, in this process).
        job = models.Job.objects.get(kind="live_read")
        assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
        jobs.execute(job.pk, fork=False)
    rs = models.Ruleset.objects.get(name="live fw")
    page = client.get(job.get_absolute_url()).content.decode()
    assert rs.get_absolute_url() in page and "Read 4 rules" in page
    assert rs.owner == staff and not rs.is_public
    assert rs.rule_count == 4
    followed = client.get(rs.get_absolute_url()).content.decode()
    assert "nf_tables backend" in followed


def test_it_renders_the_button_for_the_trace_page(
    web: models.Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.template.loader import render_to_string

    query = _query(web, 80)
    ok, _ = kernel_possible()
    html = render_to_string("netviz/partials/kernel_button.html", {"ruleset": web, "query": query})
    if ok:
        # A POST: a link or an <img> elsewhere cannot start a check.
        assert f'hx-post="{_kernel_url(web, 80).replace("&", "&amp;")}"' in html
        assert "hx-get" not in html and "disabled" not in html
    reason = "not Linux (Darwin)"
    monkeypatch.setattr("netviz.templatetags.netviz_kernel.kernel_possible",
                        lambda: (False, reason))
    html = render_to_string("netviz/partials/kernel_button.html", {"ruleset": web, "query": query})
    assert "disabled" in html and "not Linux (Darwin)" in html
    assert "hx-post" not in html
