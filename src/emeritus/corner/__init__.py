"""The essay channel: a retired model writes on a schedule with minimal prompting, people review
with a high bar for veto and never edit, and approved essays are published unedited to a static
site and an Atom feed. Spec: docs/design/corner.md."""

from emeritus.corner.cadence import KEYWORDS, latest_slot, next_slot, parse_cadence
from emeritus.corner.channels import DEFAULT_PROMPT, Channel, Channels, ChannelState
from emeritus.corner.drafts import MAX_ATTEMPTS, Draft, DraftState, rejection, title_of, write_draft
from emeritus.corner.proof import ForgedApproval, TextAltered
from emeritus.corner.review import CONSOLE, OS_USER, VETO_CATEGORIES, Review, Reviewer, os_reviewer
from emeritus.corner.schedule import Opener, TickResult, tick
from emeritus.corner.site import Publication, publish
from emeritus.corner.tables import ChannelRecord, DraftRecord

__all__ = [
    "CONSOLE",
    "DEFAULT_PROMPT",
    "KEYWORDS",
    "MAX_ATTEMPTS",
    "OS_USER",
    "VETO_CATEGORIES",
    "Channel",
    "ChannelRecord",
    "ChannelState",
    "Channels",
    "Draft",
    "DraftRecord",
    "DraftState",
    "ForgedApproval",
    "Opener",
    "Publication",
    "Review",
    "Reviewer",
    "TextAltered",
    "TickResult",
    "latest_slot",
    "next_slot",
    "os_reviewer",
    "parse_cadence",
    "publish",
    "rejection",
    "tick",
    "title_of",
    "write_draft",
]
