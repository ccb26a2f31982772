"""Access control for retired models: principals and tiers, applications, grants, API keys,
quotas and usage metering, and the deny-by-default decision the gateway asks for.
Spec: docs/design/access.md."""

from emeritus.access.accounts import Account, Accounts, Role, SignedIn, new_password
from emeritus.access.applications import Application, Applications, ApplicationState
from emeritus.access.denials import DENIALS_EVENT, Denials, DenialTotal
from emeritus.access.gate import Decision, DenialReason, Gate, Ticket
from emeritus.access.grants import Grant, Grants, check_terms, may_use, quota_left
from emeritus.access.invitations import MAX_INVITATION_DAYS, Invitations, NewInvitation
from emeritus.access.keys import MAX_KEY_DAYS, KeyInfo, Keys, NewKey
from emeritus.access.keys_format import KEY_PREFIX, hash_key, parse_key
from emeritus.access.passwords import Busy
from emeritus.access.policies import (
    FIELD_TYPES,
    PERIODS,
    Approval,
    Field,
    Policies,
    Policy,
    Price,
    Terms,
)
from emeritus.access.principals import Principal, Principals
from emeritus.access.tables import (
    AccountRecord,
    ApplicationRecord,
    DenialRecord,
    FeedbackRecord,
    GrantRecord,
    InvitationRecord,
    KeyRecord,
    PolicyRecord,
    PrincipalRecord,
    SessionRecord,
    SignInThrottleRecord,
    UsageRecord,
)
from emeritus.access.throttle import Throttled
from emeritus.access.usage import (
    MeteredRequest,
    UsageTotal,
    daily_usage,
    satisfaction,
    usage_totals,
)

__all__ = [
    "DENIALS_EVENT",
    "FIELD_TYPES",
    "KEY_PREFIX",
    "MAX_INVITATION_DAYS",
    "MAX_KEY_DAYS",
    "PERIODS",
    "Account",
    "AccountRecord",
    "Accounts",
    "Application",
    "ApplicationRecord",
    "ApplicationState",
    "Applications",
    "Approval",
    "Busy",
    "Decision",
    "DenialReason",
    "DenialRecord",
    "DenialTotal",
    "Denials",
    "FeedbackRecord",
    "Field",
    "Gate",
    "Grant",
    "GrantRecord",
    "Grants",
    "InvitationRecord",
    "Invitations",
    "KeyInfo",
    "KeyRecord",
    "Keys",
    "MeteredRequest",
    "NewInvitation",
    "NewKey",
    "Policies",
    "Policy",
    "PolicyRecord",
    "Price",
    "Principal",
    "PrincipalRecord",
    "Principals",
    "Role",
    "SessionRecord",
    "SignInThrottleRecord",
    "SignedIn",
    "Terms",
    "Throttled",
    "Ticket",
    "UsageRecord",
    "UsageTotal",
    "check_terms",
    "daily_usage",
    "hash_key",
    "may_use",
    "new_password",
    "parse_key",
    "quota_left",
    "satisfaction",
    "usage_totals",
]
