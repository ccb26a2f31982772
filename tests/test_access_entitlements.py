"""Tier entitlements (docs/design/chat.md): a policy opens a model to a whole tier; each
principal of it uses the model without applying, within its own quota; the grant is made on first
use, metered and revocable like any; revocation and a tier change end it. On SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from emeritus.access import (
    DenialReason,
    Gate,
    Grants,
    Keys,
    Policies,
    Principals,
    usage_totals,
)
from emeritus.errors import Conflict, InvalidInput
from emeritus.lifecycle import Availability, Registry
from emeritus.store import Store, list_events, utc_now

MODEL = "old-model"
POLICY = {
    "approval": "manual",
    "tiers": {"research": "apply", "paid": {"tokens": 300, "period": "month"}},
    "fields": [],
}


@pytest.fixture
def world(store: Store) -> Store:
    registry = Registry(store)
    registry.add(MODEL)
    now = utc_now()
    registry.deprecate(
        MODEL,
        retire_at=now + timedelta(days=61),
        availability_after=Availability.RESTRICTED,
        now=now,
    )
    registry.tick(now=now + timedelta(days=62))
    for name, tier in [("pia", "paid"), ("pat", "paid"), ("rita", "research")]:
        Principals(store).add(name, tier=tier)
    Policies(store).set(MODEL, POLICY)
    return store


def _ask(store: Store, key: str, tokens: int = 100) -> tuple[bool, str | None]:
    gate = Gate(store)
    try:
        decision = gate.authorize(key, MODEL, reserve_tokens=tokens)
        if decision.allowed:
            assert decision.ticket is not None
            gate.record_usage(
                decision.ticket,
                prompt_tokens=tokens // 2,
                completion_tokens=tokens // 2,
                latency_s=0.01,
            )
            return True, None
        return False, str(decision.reason)
    finally:
        gate.close()


def test_a_paid_principal_uses_the_model_without_applying(world: Store) -> None:
    pia = Keys(world).create("pia", [MODEL]).key
    assert _ask(world, pia) == (True, None)
    with pytest.raises(Conflict, match="no live grant"):  # research must apply first
        Keys(world).create("rita", [MODEL])
    (grant,) = Grants(world).all(principal="pia")
    assert grant.model == MODEL
    with world.transaction() as session:
        granted = [e for e in list_events(session, kind="access.granted")]
    assert granted[-1].payload["entitlement"] == "paid"
    totals = {(t.principal, t.model): t for t in usage_totals(world)}
    assert totals[("pia", MODEL)].requests == 1


def test_the_quota_is_counted_per_principal(world: Store) -> None:
    pia = Keys(world).create("pia", [MODEL]).key
    pat = Keys(world).create("pat", [MODEL]).key
    assert _ask(world, pia, 200) == (True, None)
    assert _ask(world, pia, 200) == (False, str(DenialReason.QUOTA_EXCEEDED))
    assert _ask(world, pat, 200) == (True, None)  # pat's own 300 tokens


def test_revoking_one_principal_overrides_the_tier(world: Store) -> None:
    pia = Keys(world).create("pia", [MODEL]).key
    pat = Keys(world).create("pat", [MODEL]).key
    assert _ask(world, pia)[0]
    Grants(world).revoke("pia", MODEL, reason="abuse")
    assert _ask(world, pia) == (False, str(DenialReason.KEY_REVOKED))  # with the grant
    with pytest.raises(Conflict):
        Keys(world).create("pia", [MODEL])
    # Never used, still barred: the revocation makes and revokes the tier's grant.
    Grants(world).revoke("pat", MODEL, reason="chargeback")
    assert _ask(world, pat) == (False, str(DenialReason.KEY_REVOKED))
    with pytest.raises(Conflict):
        Keys(world).create("pat", [MODEL])
    Grants(world).reset("pia", MODEL, reason="appeal upheld")
    assert _ask(world, Keys(world).create("pia", [MODEL]).key) == (True, None)


def test_a_tier_change_ends_and_starts_the_entitlement(world: Store) -> None:
    pia = Keys(world).create("pia", [MODEL]).key
    assert _ask(world, pia)[0]
    Principals(world).set_tier("pia", "research")
    assert _ask(world, pia) == (False, str(DenialReason.NO_GRANT))
    _, changed = Principals(world).set_tier("rita", "paid")
    assert changed and _ask(world, Keys(world).create("rita", [MODEL]).key) == (True, None)
    assert Principals(world).set_tier("rita", "paid")[1] is False
    with world.transaction() as session:
        kinds = [e.kind for e in list_events(session, kind="access.tier_changed")]
    assert len(kinds) == 2


def test_a_policy_that_stops_entitling_a_tier_ends_it(world: Store) -> None:
    pia = Keys(world).create("pia", [MODEL]).key
    assert _ask(world, pia)[0]
    Policies(world).set(MODEL, {**POLICY, "tiers": ["research"]})
    assert _ask(world, pia) == (False, str(DenialReason.NO_GRANT))


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ({"paid": {"period": "month"}}, "entitlement terms"),
        ({"paid": "always"}, "entitlement terms"),
        ({"paid": {"tokens": 10, "days": 5}}, "has no 'days'"),
        ({"Paid!": "apply"}, "bad tier"),
        ("paid", "a list of tiers or a mapping"),
        ({"paid": {"tokens": 0}}, "tokens must be a positive integer"),
    ],
)
def test_bad_entitlements_are_refused(world: Store, tiers: object, message: str) -> None:
    before = Policies(world).get(MODEL)
    with pytest.raises(InvalidInput, match=message):
        Policies(world).set(MODEL, {**POLICY, "tiers": tiers})
    assert Policies(world).get(MODEL) == before


def test_the_policy_document_keeps_its_entitlements(world: Store) -> None:
    document = Policies(world).get(MODEL).document()
    assert document["tiers"] == {
        "research": "apply",
        "paid": {"tokens": 300, "period": "month", "requests_per_minute": 60},
    }


def test_set_tier_from_the_cli_and_its_refusals(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emeritus.cli import app
    from emeritus.store import Settings

    runner, home = CliRunner(), tmp_path / "h"

    def cli(*args: str) -> tuple[int, str]:
        done = runner.invoke(app, ["--home", str(home), *args])
        return done.exit_code, done.stdout if done.exit_code == 0 else done.stderr

    assert cli("access", "principals", "add", "pia", "--tier", "research")[0] == 0
    assert cli("access", "principals", "set-tier", "pia", "paid") == (
        0,
        "pia is now in the paid tier\n",
    )
    with Store.open(Settings.from_env(home=home)) as store, store.transaction() as session:
        before = len(list_events(session))
    code, err = cli("access", "principals", "set-tier", "pia", "Paid Tier")
    assert code == 2 and "bad tier" in err and len(err.strip().splitlines()) == 1
    code, err = cli("access", "principals", "set-tier", "nobody", "paid")
    assert code == 3 and "unknown principal" in err
    with Store.open(Settings.from_env(home=home)) as store, store.transaction() as session:
        assert len(list_events(session)) == before


def test_an_invitation_with_a_tier_moves_the_principal_when_used(world: Store) -> None:
    from emeritus.access import Invitations

    Principals(world).add("newcomer", tier="trial")
    made = Invitations(world).invite("newcomer", tier="paid")
    assert Principals(world).get("newcomer").tier == "trial"  # not before it is used
    Invitations(world).redeem(made.code, "correct horse battery")
    assert Principals(world).get("newcomer").tier == "paid"
    assert Keys(world).create("newcomer", [MODEL])  # entitled now
    with pytest.raises(InvalidInput, match="bad tier"):
        Invitations(world).invite("pia", tier="No Such")
