"""Personal API tokens: made on the account page, shown once, kept as a
SHA-256 digest, revocable.

A token is `nvz_` and 32 random bytes in URL-safe base64; a request carries
it as `Authorization: Bearer <token>` (`Token <token>` is accepted too).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.utils import timezone

from netviz import models

PREFIX = "nvz_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: Any, name: str) -> tuple[models.ApiToken, str]:
    """The stored row and the token itself, which is never stored."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = models.ApiToken.objects.create(
        user=user, name=(name.strip() or "API token")[:100], prefix=token[:10], digest=digest(token)
    )
    return row, token


def revoke(row: models.ApiToken) -> None:
    if row.revoked is None:
        row.revoked = timezone.now()
        row.save(update_fields=["revoked"])


def bearer(header: str) -> str | None:
    """The token of an Authorization header, or None when there is none."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not value.strip():
        return None
    return value.strip()


def user_for(token: str) -> Any | None:
    """The active user a live token belongs to, or None."""
    row = (
        models.ApiToken.objects.select_related("user")
        .filter(digest=digest(token), revoked__isnull=True)
        .first()
    )
    if row is None or not row.user.is_active:
        return None
    models.ApiToken.objects.filter(pk=row.pk).update(last_used=timezone.now())
    return row.user
