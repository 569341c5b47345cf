"""{% kernel_status as k %}: can this server's kernel worker ask the kernel? (k.ok, k.reason)"""

from __future__ import annotations

from django import template

from netviz.kernel.replay import kernel_possible

register = template.Library()


@register.simple_tag
def kernel_status() -> dict[str, object]:
    ok, why = kernel_possible()
    return {"ok": ok, "reason": why}
