"""A notice sender killed with SIGKILL mid-send loses no delivery: every one is made at least
once, and a receiver that deduplicates by idempotency key acts on each exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from emeritus.lifecycle import Registry
from emeritus.notify import AttemptRecord, DeliveryConfig, Subscribers, notifying_registry
from emeritus.store import Store, utc_now
from notice_receivers import Webhook, serve_webhook

EXE = str(Path(sys.executable).with_name("emeritus"))
RECEIVERS = 5


def _send(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [EXE, "notices", "send"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_sigkill_mid_send_loses_nothing_and_duplicates_nothing(store: Store) -> None:
    for hook in serve_webhook(Webhook(delay=0.4)):
        config = DeliveryConfig(hosts=("127.0.0.1",), timeout=1.0)
        now = utc_now()
        Registry(store).add("old", now=now)
        subs = Subscribers(store, config)
        for n in range(RECEIVERS):
            _, secret = subs.subscribe(webhook=f"{hook.url}?n={n}", now=now)
            hook.secrets.append(secret or "")
        notifying_registry(store, config).deprecate(
            "old", retire_at=now + timedelta(days=90), now=now
        )
        env = {
            **os.environ,
            "EMERITUS_DATABASE_URL": store.settings.database_url,
            "EMERITUS_NOTICE_HOSTS": "127.0.0.1",
            "EMERITUS_NOTICE_TIMEOUT": "1",
        }
        sender = _send(env)
        deadline = time.monotonic() + 60
        while len(hook.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(hook.received) == 2, "the sender never reached the second receiver"
        # The second receiver has acted and not yet replied: the sender dies waiting.
        sender.send_signal(signal.SIGKILL)
        sender.wait()
        states = [d.state for d in subs.deliveries()]
        assert states.count("sent") == 1 and states.count("pending") == RECEIVERS - 1

        # The killed claim's lease (2 x timeout + 1 s) runs out; the next run sends the rest.
        time.sleep(3.2)
        finish = _send(env)
        _, err = finish.communicate(timeout=120)
        assert finish.returncode == 0, err.decode()

        deliveries = subs.deliveries()
        assert [d.state for d in deliveries] == ["sent"] * RECEIVERS
        assert set(hook.acted) == {d.idempotency_key for d in deliveries}
        assert len(hook.acted) == RECEIVERS  # each acted on once
        assert len(hook.received) == RECEIVERS + 1  # the interrupted one went twice
        repeated = [d for d in deliveries if d.tries == 2]
        assert len(repeated) == 1
        keys = [r["headers"]["Idempotency-Key"] for r in hook.received]
        assert keys.count(repeated[0].idempotency_key) == 2
        with store.transaction() as session:
            outcomes = sorted(session.scalars(select(AttemptRecord.outcome)))
        assert outcomes == ["ok"] * RECEIVERS + ["started"]  # the killed try stays visible
