from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from . import models


# Actions shared by every owned model (Ruleset, HostProfile, SavedTrace,
# Comparison, Lesson): visibility and the read-only link.
@admin.action(description="Make visible to everyone")
def make_public(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    queryset.update(is_public=True)


@admin.action(description="Make private (owner, staff and share link only)")
def make_private(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    queryset.update(is_public=False)


@admin.action(description="Revoke share links (new tokens)")
def revoke_links(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    # One token per row: share_token is unique.
    for obj in queryset:
        obj.share_token = models.new_token()
        obj.save(update_fields=["share_token"])


OWNED_ACTIONS = (make_public, make_private, revoke_links)


class TableInline(admin.TabularInline):
    model = models.Table
    extra = 0
    fields = ("name", "line", "position")
    readonly_fields = fields
    show_change_link = True


@admin.register(models.Ruleset)
class RulesetAdmin(admin.ModelAdmin):
    list_display = ("name", "family", "rule_count", "chain_count", "is_demo", "is_public", "owner", "created")
    list_filter = ("family", "is_demo", "is_public")
    list_select_related = ("owner",)
    search_fields = ("name", "description", "owner__username")
    date_hierarchy = "created"
    actions = OWNED_ACTIONS
    readonly_fields = ("rule_count", "chain_count", "created", "share_token")
    raw_id_fields = ("owner",)
    inlines = (TableInline,)


class ChainInline(admin.TabularInline):
    model = models.Chain
    extra = 0
    fields = ("name", "policy", "builtin", "line", "position")
    readonly_fields = fields
    show_change_link = True


@admin.register(models.Table)
class TableAdmin(admin.ModelAdmin):
    list_display = ("name", "ruleset", "line")
    list_select_related = ("ruleset",)
    raw_id_fields = ("ruleset",)
    inlines = (ChainInline,)


@admin.register(models.Chain)
class ChainAdmin(admin.ModelAdmin):
    list_display = ("name", "table", "policy", "builtin", "line")
    list_filter = ("builtin",)
    search_fields = ("name",)
    raw_id_fields = ("table",)


@admin.register(models.Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("chain", "index", "line", "target", "text")
    search_fields = ("text", "comment", "target")
    raw_id_fields = ("chain",)


@admin.register(models.IPSet)
class IPSetAdmin(admin.ModelAdmin):
    list_display = ("name", "type", "family", "member_count", "ruleset")
    search_fields = ("name",)
    raw_id_fields = ("ruleset",)


@admin.register(models.HostProfile)
class HostProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "ruleset", "is_public", "owner", "created")
    list_filter = ("is_public",)
    list_select_related = ("ruleset", "owner")
    search_fields = ("name", "ruleset__name", "owner__username")
    readonly_fields = ("share_token", "created")
    actions = OWNED_ACTIONS
    raw_id_fields = ("ruleset", "owner")


@admin.register(models.SavedTrace)
class SavedTraceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "ruleset", "verdict", "is_public", "owner", "created")
    list_filter = ("verdict", "is_public")
    list_select_related = ("ruleset", "owner")
    search_fields = ("title", "ruleset__name", "owner__username")
    readonly_fields = ("share_token", "created")
    raw_id_fields = ("ruleset", "host", "owner")
    date_hierarchy = "created"
    actions = OWNED_ACTIONS


@admin.register(models.Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("__str__", "left_ruleset", "right_ruleset", "is_demo", "is_public", "owner", "created")
    list_filter = ("is_demo", "is_public")
    list_select_related = ("left_ruleset", "right_ruleset", "owner")
    search_fields = ("title", "description", "slug", "left_ruleset__name", "right_ruleset__name",
                     "owner__username")
    readonly_fields = ("share_token", "created")
    raw_id_fields = ("left_ruleset", "right_ruleset", "owner")
    actions = OWNED_ACTIONS


class LessonStepInline(admin.StackedInline):
    model = models.LessonStep
    extra = 0
    fields = ("position", "title", "saved_trace", "comparison", "notes", "question", "answer")
    raw_id_fields = ("saved_trace", "comparison")


@admin.register(models.Lesson)
class LessonAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "step_count", "is_public", "owner", "created")
    list_filter = ("is_public",)
    list_select_related = ("owner",)
    search_fields = ("title", "description", "slug", "owner__username")
    readonly_fields = ("share_token", "created")
    raw_id_fields = ("owner",)
    inlines = (LessonStepInline,)
    actions = OWNED_ACTIONS

    @admin.display(description="steps")
    def step_count(self, obj: models.Lesson) -> int:
        return obj.steps.count()


@admin.register(models.Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "taken", "owner", "is_public", "created")
    list_filter = ("is_public",)
    search_fields = ("name", "hostname")
    readonly_fields = ("text", "notes", "taken", "hostname")
    actions = OWNED_ACTIONS


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    # The digest is all there is of a token; staff can revoke, never read one.
    list_display = ("name", "prefix", "user", "created", "last_used", "revoked")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "digest", "created", "last_used")

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queryset.filter(revoked__isnull=True).update(revoked=timezone.now())

    actions = ("revoke_tokens",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is made on the account page, where it is shown once.
        return False
