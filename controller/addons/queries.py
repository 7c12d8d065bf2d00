"""What the transports read of add-ons: an app's add-ons, who an add-on is attached to and as
what, and the app that owns it, as the store holds them now."""
from __future__ import annotations

from core.models import Addon, App, Attachment

from controller.services import Services


def of_app(svc: Services, app: App) -> list[Addon]:
    """The add-ons attached to the app (its own and those shared with it)."""
    return svc.store.list_addons(app)


def attachments(svc: Services, addon: Addon) -> list[Attachment]:
    """Every app the add-on is attached to, with the config var it sets there."""
    return svc.store.attachments(addon=addon)


def attachment(svc: Services, addon: Addon, app: App) -> Attachment:
    """The add-on's attachment to the app; NotFound names how to list them."""
    return svc.store.get_attachment(addon, app)


def owner(svc: Services, addon: Addon) -> App:
    """The app that owns the add-on (its data goes with that app)."""
    return svc.store.get_app(addon.app)


def find_attachment(svc: Services, addon: Addon, app: App) -> Attachment | None:
    """The add-on's attachment to the app; None when it is not attached there."""
    return svc.store.find_attachment(addon, app)
