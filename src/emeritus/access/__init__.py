"""Access control for retired models: principals and tiers, applications, grants, API keys,
quotas and usage metering, and the deny-by-default decision the gateway asks for.
Spec: docs/design/access.md."""

from emeritus.access.accounts import Account, Accounts, Role, SignedIn, new_password
from emeritus.access.applications import Application, Applications, ApplicationState
from emeritus.access.gate import Decision, Gate, Reason, Ticket
from emeritus.access.grants import Grant, Grants, check_terms
from emeritus.access.keys import MAX_KEY_DAYS, KeyInfo, Keys, NewKey
from emeritus.access.keys_format import KEY_PREFIX, hash_key, parse_key
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
    FeedbackRecord,
    GrantRecord,
    KeyRecord,
    PolicyRecord,
    PrincipalRecord,
    SessionRecord,
    UsageRecord,
)
from emeritus.access.usage import Usage, UsageTotal, daily_usage, satisfaction, usage_totals

__all__ = [
    "FIELD_TYPES",
    "KEY_PREFIX",
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
    "Decision",
    "FeedbackRecord",
    "Field",
    "Gate",
    "Grant",
    "GrantRecord",
    "Grants",
    "KeyInfo",
    "KeyRecord",
    "Keys",
    "NewKey",
    "Policies",
    "Policy",
    "PolicyRecord",
    "Price",
    "Principal",
    "PrincipalRecord",
    "Principals",
    "Reason",
    "Role",
    "SessionRecord",
    "SignedIn",
    "Terms",
    "Ticket",
    "Usage",
    "UsageRecord",
    "UsageTotal",
    "check_terms",
    "daily_usage",
    "hash_key",
    "new_password",
    "parse_key",
    "satisfaction",
    "usage_totals",
]
