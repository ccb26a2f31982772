"""The registry's notice hook: every notice a command writes carries its deliveries, committed
in the notice's own transaction (docs/design/notices.md, "The outbox")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emeritus.lifecycle import NoticeHook, Registry
from emeritus.notify.config import DeliveryConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from emeritus.lifecycle import NoticeRecord
    from emeritus.store import Settings, Store


def fan_out_hook(settings: Settings, config: DeliveryConfig) -> NoticeHook:
    """The registry's `on_notice`: a notice's deliveries are committed with it."""

    def hook(session: Session, notice: NoticeRecord) -> None:
        # The outbox, and the access tables its recipients come from, load with the first
        # notice: a cron tick with nothing to announce loads neither.
        from emeritus.notify.outbox import fan_out

        fan_out(session, notice, settings=settings, config=config)

    return hook


def notifying_registry(store: Store, config: DeliveryConfig | None = None) -> Registry:
    """The registry whose notices carry their deliveries: what every command that changes a
    model's lifecycle uses."""
    config = config or DeliveryConfig.from_env()
    return Registry(store, on_notice=fan_out_hook(store.settings, config))
