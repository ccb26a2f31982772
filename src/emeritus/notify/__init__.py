"""Notice delivery: subscribers, the outbox written with each notice, signed webhooks and email,
retries and dead letters. Spec: docs/design/notices.md."""

from emeritus.notify.config import DeliveryConfig
from emeritus.notify.outbox import (
    affected_principals,
    fan_out_hook,
    notifying_registry,
    usage_figures,
)
from emeritus.notify.sender import Sender, SendReport, backoff
from emeritus.notify.signing import SIGNATURE_HEADER, new_secret, sign, verify
from emeritus.notify.stragglers import Straggler, day_labels, find_stragglers
from emeritus.notify.subscribers import STATES, Delivery, Subscriber, Subscribers
from emeritus.notify.tables import AttemptRecord, DeliveryRecord, SubscriberRecord
from emeritus.notify.targets import check_email, check_webhook

__all__ = [
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
    "fan_out_hook",
    "find_stragglers",
    "new_secret",
    "notifying_registry",
    "sign",
    "usage_figures",
    "verify",
]
