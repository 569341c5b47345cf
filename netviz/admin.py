from __future__ import annotations

from django.contrib import admin

from . import models


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
    search_fields = ("name", "description")
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
    search_fields = ("name",)
    raw_id_fields = ("ruleset", "owner")


@admin.register(models.SavedTrace)
class SavedTraceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "ruleset", "verdict", "is_public", "owner", "created")
    list_filter = ("verdict", "is_public")
    raw_id_fields = ("ruleset", "host", "owner")
