"""Notice delivery: subscribers, the outbox written with each notice, signed webhooks and email,
retries and dead letters. Spec: docs/design/notices.md.

Names load with the module that holds them, on first use: a cron tick that has nothing to
deliver loads neither the outbox nor the access tables its recipients come from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emeritus.lazy import lazy_names

if TYPE_CHECKING:
    from emeritus.notify.config import DeliveryConfig
    from emeritus.notify.due import NOTHING_SENT, deliveries_due, outbox_views
    from emeritus.notify.hook import fan_out_hook, notifying_registry
    from emeritus.notify.outbox import affected_principals, usage_figures
    from emeritus.notify.sender import Sender, SendReport, backoff
    from emeritus.notify.signing import SIGNATURE_HEADER, new_secret, sign, verify
    from emeritus.notify.stragglers import Straggler, day_labels, find_stragglers
    from emeritus.notify.subscribers import STATES, Delivery, Subscriber, Subscribers
    from emeritus.notify.tables import AttemptRecord, DeliveryRecord, SubscriberRecord
    from emeritus.notify.targets import check_email, check_webhook

# Each public name, and the module under emeritus.notify that holds it.
_MODULES = {
    "DeliveryConfig": "config",
    "NOTHING_SENT": "due",
    "deliveries_due": "due",
    "outbox_views": "due",
    "fan_out_hook": "hook",
    "notifying_registry": "hook",
    "affected_principals": "outbox",
    "usage_figures": "outbox",
    "Sender": "sender",
    "SendReport": "sender",
    "backoff": "sender",
    "SIGNATURE_HEADER": "signing",
    "new_secret": "signing",
    "sign": "signing",
    "verify": "signing",
    "Straggler": "stragglers",
    "day_labels": "stragglers",
    "find_stragglers": "stragglers",
    "STATES": "subscribers",
    "Delivery": "subscribers",
    "Subscriber": "subscribers",
    "Subscribers": "subscribers",
    "AttemptRecord": "tables",
    "DeliveryRecord": "tables",
    "SubscriberRecord": "tables",
    "check_email": "targets",
    "check_webhook": "targets",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULES, globals())


__all__ = [
    "NOTHING_SENT",
    "SIGNATURE_HEADER",
    "STATES",
    "AttemptRecord",
    "Delivery",
    "DeliveryConfig",
    "DeliveryRecord",
    "SendReport",
    "Sender",
    "Straggler",
    "Subscriber",
    "SubscriberRecord",
    "Subscribers",
    "affected_principals",
    "backoff",
    "check_email",
    "check_webhook",
    "day_labels",
    "deliveries_due",
    "fan_out_hook",
    "find_stragglers",
    "new_secret",
    "notifying_registry",
    "outbox_views",
    "sign",
    "usage_figures",
    "verify",
]
