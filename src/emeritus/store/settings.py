"""Settings, read once from the environment: where emeritus keeps its data and how it behaves."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

from emeritus.errors import InvalidInput

DEFAULT_NOTICE_DAYS = 60
DEFAULT_REMINDER_DAYS = (90, 60, 30, 7, 1)


@dataclass(frozen=True)
class Settings:
    """Every setting emeritus reads, with the environment variable that sets it.

    - `home` (`EMERITUS_HOME`): the data directory; default: the user's data directory.
    - `database_url` (`EMERITUS_DATABASE_URL`): SQLAlchemy URL; default: SQLite in the home.
    - `notice_days` (`EMERITUS_NOTICE_DAYS`): minimum days between a deprecation notice and
      retirement; default 60.
    - `public_url` (`EMERITUS_PUBLIC_URL`): where this installation's pages are published, used in
      notices and feeds; default `http://localhost:8000`.
    - `actor` (`EMERITUS_ACTOR`): who is recorded as acting; default: the login name.
    - `archive_root` (`EMERITUS_ARCHIVE`): the primary archive copy, a local directory where
      objects are written; default: `archive` in the home.
    - `reviewers` (`EMERITUS_REVIEWERS`): the operating-system accounts that may approve or veto
      essays from the CLI, comma-separated; default: none (reviews go through the console).
    - `reminder_days` (`EMERITUS_NOTICE_REMINDERS`): days before a retirement at which
      `lifecycle tick` sends a reminder, comma-separated; default `90,60,30,7,1`.
    """

    home: Path
    database_url: str
    notice_days: int = DEFAULT_NOTICE_DAYS
    public_url: str = "http://localhost:8000"
    actor: str = "unknown"
    archive_root: Path | None = None
    reviewers: tuple[str, ...] = ()
    reminder_days: tuple[int, ...] = DEFAULT_REMINDER_DAYS

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: Path | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        if home is None:
            home_text = env.get("EMERITUS_HOME")
            home = Path(home_text) if home_text else platformdirs.user_data_path("emeritus")
        home = home.expanduser().resolve()
        database_url = env.get("EMERITUS_DATABASE_URL") or f"sqlite:///{home / 'emeritus.db'}"
        notice_text = env.get("EMERITUS_NOTICE_DAYS", str(DEFAULT_NOTICE_DAYS))
        try:
            notice_days = int(notice_text)
        except ValueError:
            raise InvalidInput(
                f"EMERITUS_NOTICE_DAYS must be a whole number, not {notice_text!r}"
            ) from None
        if notice_days < 0:
            raise InvalidInput(f"EMERITUS_NOTICE_DAYS must not be negative, not {notice_days}")
        return cls(
            home=home,
            database_url=database_url,
            notice_days=notice_days,
            public_url=env.get("EMERITUS_PUBLIC_URL", "http://localhost:8000").rstrip("/"),
            actor=env.get("EMERITUS_ACTOR") or _login_name(),
            archive_root=Path(env["EMERITUS_ARCHIVE"]).expanduser().resolve()
            if env.get("EMERITUS_ARCHIVE")
            else None,
            reviewers=_names(env.get("EMERITUS_REVIEWERS", "")),
            reminder_days=_days(env.get("EMERITUS_NOTICE_REMINDERS")),
        )

    def with_actor(self, actor: str | None) -> Settings:
        return self if not actor else replace(self, actor=actor)

    @property
    def archive_dir(self) -> Path:
        return self.archive_root or self.home / "archive"

    @property
    def notices_dir(self) -> Path:
        return self.home / "notices"


def _names(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if len(name) > 100 or any(c.isspace() for c in name):
            raise InvalidInput(f"EMERITUS_REVIEWERS: {name[:40]!r} is not an account name")
    return names


def _days(text: str | None) -> tuple[int, ...]:
    if text is None:
        return DEFAULT_REMINDER_DAYS
    try:
        days = sorted({int(part) for part in text.split(",") if part.strip()}, reverse=True)
    except ValueError:
        raise InvalidInput(
            f"EMERITUS_NOTICE_REMINDERS must be whole numbers of days, comma-separated, "
            f"not {text!r}"
        ) from None
    if any(d < 0 or d > 3650 for d in days):
        raise InvalidInput("EMERITUS_NOTICE_REMINDERS: each threshold is 0 to 3650 days")
    # Day 0 is the retirement notice itself, sent by the tick that retires the model.
    return tuple(d for d in days if d > 0)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"
