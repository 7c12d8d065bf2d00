"""The state store: every SQL statement of the platform lives in this package (SQLite, WAL,
ordered migrations). `Store` is composed of one mixin per area; callers outside it hold
the logic and call store methods, never SQL."""
from __future__ import annotations

from .accounts import AccountsMixin
from .addons import AddonsMixin
from .apps import AppsMixin
from .base import StoreBase
from .cron import CronMixin
from .events import EventsMixin
from .metrics import MetricsMixin
from .prom import PromMixin
from .router import RouterMixin
from .schema import MIGRATIONS
from .tenancy import TenancyMixin

__all__ = ["MIGRATIONS", "Store"]


class Store(AppsMixin, AddonsMixin, CronMixin, EventsMixin, MetricsMixin, PromMixin, AccountsMixin, RouterMixin, TenancyMixin, StoreBase):
    """One store per database file; cheap to create (one connection per transaction)."""
