from django.urls import path  # noqa: F401

app_name = "netviz"

# Pages are split by area; each area module owns its own urlpatterns list.
from . import (  # noqa: E402
    api,
    pages_accounts,
    pages_compare,
    pages_fleet,
    pages_hosts,
    pages_jobs,
    pages_kernel,
    pages_lessons,
    pages_rulesets,
    pages_share,
    pages_snapshots,
    pages_traces,
)

urlpatterns = [
    *pages_rulesets.urlpatterns,
    *pages_hosts.urlpatterns,
    *pages_traces.urlpatterns,
    *pages_kernel.urlpatterns,
    *pages_jobs.urlpatterns,
    *pages_fleet.urlpatterns,
    *pages_compare.urlpatterns,
    *pages_lessons.urlpatterns,
    *pages_share.urlpatterns,
    *pages_accounts.urlpatterns,
    *pages_snapshots.urlpatterns,
    *api.urlpatterns,
]
