"""The state store: every SQL statement of the platform lives in this package (SQLite, WAL,
ordered migrations). `Store` is composed of one mixin per area; callers outside it hold
the logic and call store methods, never SQL."""
from __future__ import annotations

from controller.store.accounts import AccountsMixin
from controller.store.addons import AddonsMixin
from controller.store.apps import AppsMixin
from controller.store.base import StoreBase
from controller.store.cron import CronMixin
from controller.store.events import EventsMixin
from controller.store.metrics import MetricsMixin
from controller.store.pipelines import PipelinesMixin
from controller.store.prom import PromMixin
from controller.store.router import RouterMixin
from controller.store.schema import MIGRATIONS
from controller.store.sleep import SleepMixin
from controller.store.tenancy import TenancyMixin

__all__ = ["MIGRATIONS", "Store"]


class Store(AppsMixin, AddonsMixin, PipelinesMixin, CronMixin, EventsMixin, MetricsMixin, PromMixin, AccountsMixin, RouterMixin, SleepMixin, TenancyMixin, StoreBase):
    """One store per database file; cheap to create (one connection per transaction)."""
