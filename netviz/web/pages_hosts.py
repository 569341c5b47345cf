"""The host profile page: a node's interfaces, routes, ip rules and sysctls.

Shows what the engine makes of them (the sysctl values the kernel acts on per
interface, all and device combined) and, for whoever may edit the ruleset,
a form that takes `ip` output as pasted (text or JSON) and `sysctl -a` lines.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from netviz import models, store
from netviz.engine import iproute
from netviz.engine.host import Host, parse_sysctl_text
from netviz.engine.ruleset import Family
from netviz.web import access
from netviz.web.pages_rulesets import get_ruleset_for

# The per-device sysctls the engine models, in the order the page lists them.
CONF_KEYS = ("forwarding", "rp_filter", "route_localnet", "accept_local", "src_valid_mark")


class HostProfileForm(forms.Form):
    name = forms.CharField(max_length=200)
    interfaces = forms.CharField(
        required=False, strip=False, label="Interfaces",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}),
        help_text="Paste `ip -j addr` (with `ip -j -d link` bridges and ports come along), `ip addr`, "
                  "`ip -br addr`, or edit the JSON below (type, master, neighbors, hairpin for bridges).",
    )
    routes = forms.CharField(
        required=False, strip=False, label="Routes",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
        help_text="`ip route show table all` or `ip -j route show table all`; routes the kernel makes "
                  "from the addresses (proto kernel) are dropped.",
    )
    rules = forms.CharField(
        required=False, strip=False, label="ip rules",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
        help_text="`ip rule` or `ip -j rule`; the kernel's three default rules may stay in.",
    )
    sysctls = forms.CharField(
        required=False, strip=False, label="sysctls",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "mono"}),
        help_text="`sysctl -a` lines (name = value), e.g. net.ipv4.conf.all.rp_filter = 1. "
                  "A name left out has its fresh-namespace value.",
    )

    def __init__(self, *args: Any, family: str = "ipv4", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.family = family

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            interfaces = iproute.ip_interfaces(data.get("interfaces") or "")
        except ValueError as exc:
            self.add_error("interfaces", f"Cannot read the interfaces: {exc}")
            return data
        for name, parse in (("routes", lambda t: iproute.ip_routes(t, interfaces)),
                            ("rules", iproute.ip_rules), ("sysctls", parse_sysctl_text)):
            try:
                data[name] = parse(data.get(name) or "")
            except ValueError as exc:
                self.add_error(name, f"Cannot read the {name}: {exc}")
                return data
        data["interfaces"] = interfaces
        host = {"interfaces": interfaces, "routes": data["routes"], "rules": data["rules"], "sysctls": data["sysctls"]}
        try:
            # What the parsers cannot see line by line: a route through an
            # unknown interface, a port whose bridge is missing …
            data["host"] = Host.from_dict(host, Family(self.family)).to_dict()
        except ValueError as exc:
            self.add_error(None, f"The host profile does not add up: {exc}")
        return data


def _initial(host: models.HostProfile) -> dict[str, str]:
    return {
        "name": host.name,
        "interfaces": "[\n" + ",\n".join(json.dumps(i) for i in host.interfaces) + "\n]" if host.interfaces else "",
        "routes": "\n".join(host.routes),
        "rules": "\n".join(host.rules),
        "sysctls": "\n".join(f"{k} = {v}" for k, v in sorted(host.sysctls.items())),
    }


def _host_for(request: HttpRequest, pk: int, hpk: int) -> tuple[models.Ruleset, models.HostProfile]:
    ruleset = get_ruleset_for(request, pk)
    host = models.HostProfile.objects.filter(pk=hpk, ruleset=ruleset).first()
    if host is None:
        raise Http404("No such host profile")
    return ruleset, host


def effective_sysctls(host: Host, family: str) -> dict[str, Any]:
    """The values the kernel acts on, per interface (Host.conf)."""
    fam = "ipv6" if family == "ipv6" else "ipv4"
    rows = []
    for iface in host.interfaces:
        values = {key: host.conf(key, iface.name, fam) for key in CONF_KEYS}
        rows.append({"name": iface.name, "values": [values[k] for k in CONF_KEYS],
                     "bridge": host.bridge_of(iface.name).name if host.bridge_of(iface.name) else ""})
    return {
        "keys": CONF_KEYS,
        "rows": rows,
        "bridge_nf": {"iptables": host.bridge_nf_call(4), "ip6tables": host.bridge_nf_call(6)},
        "ipv6_forwarding": host.forwarding_all("ipv6"),
    }


def _render(request: HttpRequest, ruleset: models.Ruleset, host: models.HostProfile,
            form: HostProfileForm | None, status: int = 200) -> HttpResponse:
    editable = access.can_edit(request, "r", ruleset)
    effective: dict[str, Any] | None = None
    error = ""
    try:
        effective = effective_sysctls(Host.from_dict(host.as_scenario_host(), Family(ruleset.family)), ruleset.family)
    except ValueError as exc:
        error = str(exc)
    ctx = {
        "ruleset": ruleset,
        "host": host,
        "effective": effective,
        "error": error,
        "editable": editable,
        "form": form if form is not None else (HostProfileForm(initial=_initial(host)) if editable else None),
    }
    return render(request, "netviz/host.html", ctx, status=status)


@require_GET
def host_detail(request: HttpRequest, pk: int, hpk: int) -> HttpResponse:
    ruleset, host = _host_for(request, pk, hpk)
    return _render(request, ruleset, host, None)


@require_POST
def host_edit(request: HttpRequest, pk: int, hpk: int) -> HttpResponse:
    ruleset, host = _host_for(request, pk, hpk)
    if not access.can_edit(request, "r", ruleset):
        raise Http404("No such host profile to edit")
    form = HostProfileForm(request.POST, family=ruleset.family)
    if not form.is_valid():
        return _render(request, ruleset, host, form, status=400)
    saved = form.cleaned_data["host"]
    host.name = form.cleaned_data["name"]
    host.interfaces = saved["interfaces"]
    host.routes = saved["routes"]
    host.rules = saved.get("rules", [])
    host.sysctls = saved.get("sysctls", {})
    host.save()
    messages.success(request, "Host profile saved: every trace and kernel check of this ruleset uses it.")
    return redirect("netviz:host", pk=ruleset.pk, hpk=host.pk)


@require_POST
def host_new(request: HttpRequest, pk: int) -> HttpResponse:
    # An empty profile to fill in on its page (for rulesets uploaded without one).
    ruleset = get_ruleset_for(request, pk)
    if not access.can_edit(request, "r", ruleset):
        raise Http404("No such ruleset to edit")
    host = store.store_host(name=f"{ruleset.name} host"[:200], interfaces=[], routes=[], ruleset=ruleset,
                            owner=ruleset.owner)
    host.is_public = ruleset.is_public
    host.save(update_fields=["is_public"])
    return redirect("netviz:host", pk=ruleset.pk, hpk=host.pk)


urlpatterns = [
    path("rulesets/<int:pk>/hosts/new/", host_new, name="host_new"),
    path("rulesets/<int:pk>/hosts/<int:hpk>/", host_detail, name="host"),
    path("rulesets/<int:pk>/hosts/<int:hpk>/edit/", host_edit, name="host_edit"),
]
