"""`emeritus access`: principals, policies (forms), applications, grants, keys and usage
(docs/design/access.md).

Exit status: 0 done; 2 bad input (a bad form answer, policy or term); 3 an unknown principal,
model, application or key; 4 refused by the rules (a rejected or revoked applicant re-applying, a
second pending application, a tier the model is not open to, a key for a model without a live
grant, a reset of what is not rejected or revoked, an invitation for a principal that already
has a console account).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from emeritus.cli.output import JsonOption, console, day, emit_json
from emeritus.cli.root import open_store
from emeritus.errors import InvalidInput

access_app = typer.Typer(
    help="Who may still use a retired model: principals, applications, grants, keys, usage.",
    no_args_is_help=True,
)
principals_app = typer.Typer(help="Principals and their tiers.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
access_app.add_typer(principals_app, name="principals")
access_app.add_typer(keys_app, name="keys")
users_app = typer.Typer(
    help="Console accounts: operators, reviewers, applicants.", no_args_is_help=True
)
access_app.add_typer(users_app, name="users")

WhyOption = Annotated[str, typer.Option(help="Why (recorded with the event).")]


def _yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{what} {path}: {str(exc).splitlines()[0]}") from None


def _show(rows: list[dict[str, Any]], columns: list[str], as_json: bool, empty: str) -> None:
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print(empty)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


@principals_app.command("add")
def principals_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A person, team or customer.")],
    tier: Annotated[str, typer.Option(help="Their tier, e.g. paid or research.")],
    contact: Annotated[str, typer.Option(help="How to reach them.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Add a principal."""
    from emeritus.access import Principals

    with open_store(ctx) as store:
        added = Principals(store).add(name, tier=tier, contact=contact)
    if as_json:
        emit_json(added.to_dict())
    else:
        console.print(f"added principal {added.name} ({added.tier})", markup=False)


@principals_app.command("set-tier")
def principals_set_tier(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal.")],
    tier: Annotated[str, typer.Argument(help="Its new tier, e.g. paid.")],
    as_json: JsonOption = False,
) -> None:
    """Move a principal to another tier; the entitlements of its old tier stop at once."""
    from emeritus.access import Principals

    with open_store(ctx) as store:
        principal, changed = Principals(store).set_tier(name, tier)
    if as_json:
        emit_json({**principal.to_dict(), "changed": changed})
    elif changed:
        console.print(f"{principal.name} is now in the {principal.tier} tier", markup=False)
    else:
        console.print(f"{principal.name} is already in the {principal.tier} tier", markup=False)


@principals_app.command("list")
def principals_list(
    ctx: typer.Context,
    tier: Annotated[str | None, typer.Option(help="Only this tier.", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """List principals."""
    from emeritus.access import Principals

    with open_store(ctx) as store:
        rows = [p.to_dict() for p in Principals(store).all(tier=tier)]
    _show(rows, ["name", "tier", "contact"], as_json, "no principals")


@access_app.command("policy")
def policy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="A YAML policy (form, approval, tiers, grant, price).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set (with --file) or show how a model is applied for."""
    from emeritus.access import Policies

    with open_store(ctx) as store:
        policies = Policies(store)
        shown = policies.set(model, _yaml(file, "policy")) if file else policies.get(model)
    if as_json:
        emit_json(shown.to_dict())
        return
    console.print(yaml.safe_dump(shown.to_dict(), sort_keys=False).rstrip(), markup=False)


@access_app.command("apply")
def apply(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="Who applies.")],
    model: Annotated[str, typer.Argument(help="For which model.")],
    answers: Annotated[
        Path | None,
        typer.Option("--answers", help="The form's answers, as YAML or JSON.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Apply for access to a model with the answers to its form."""
    from emeritus.access import Applications

    given = _yaml(answers, "answers") if answers else {}
    with open_store(ctx) as store:
        application = Applications(store).submit(principal, model, given or {})
    if as_json:
        emit_json(application.to_dict())
    else:
        console.print(f"application {application.uid}: {application.state}", markup=False)


@access_app.command("applications")
def applications(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option(help="pending, approved or rejected.", show_default=False),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """List access applications (pending ones first to decide)."""
    from emeritus.access import Applications, ApplicationState

    try:
        chosen = ApplicationState(state) if state else None
    except ValueError:
        raise InvalidInput(f"unknown state {state!r}: pending, approved or rejected") from None
    with open_store(ctx) as store:
        rows = [a.to_dict() for a in Applications(store).all(state=chosen, model=model)]
    _show(rows, ["uid", "principal", "model", "state", "submitted_at"], as_json, "no applications")


@access_app.command("approve")
def approve(
    ctx: typer.Context,
    application: Annotated[str, typer.Argument(help="The application's id.")],
    reason: Annotated[str, typer.Option(help="Why (optional).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Approve a pending application: a grant with the model's terms is created."""
    from emeritus.access import Applications

    with open_store(ctx) as store:
        decided = Applications(store).approve(application, reason=reason)
    _decided(decided.to_dict(), as_json)


@access_app.command("reject")
def reject(
    ctx: typer.Context,
    application: Annotated[str, typer.Argument(help="The application's id.")],
    reason: WhyOption,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending application; the applicant cannot re-apply until it is reset."""
    from emeritus.access import Applications

    with open_store(ctx) as store:
        decided = Applications(store).reject(application, reason=reason)
    _decided(decided.to_dict(), as_json)


@access_app.command("reset")
def reset(
    ctx: typer.Context,
    reason: WhyOption,
    target: Annotated[
        str,
        typer.Argument(help="A rejected application's id, or the principal of a revoked grant."),
    ],
    model: Annotated[
        str | None,
        typer.Argument(
            help="The model of the revoked grant (with a principal).", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Let an applicant apply again: lift a rejection (APPLICATION) or the block a revoked grant
    leaves (PRINCIPAL MODEL; the revoked keys stay revoked)."""
    from emeritus.access import Applications, Grants

    with open_store(ctx) as store:
        if model is None:
            decided = Applications(store).reset(target, reason=reason)
            _decided(decided.to_dict(), as_json)
            return
        lifted = Grants(store).reset(target, model, reason=reason)
    if as_json:
        emit_json(lifted.to_dict())
    else:
        console.print(
            f"{target} may apply for {model} again (revocation of {lifted.uid} reset)",
            markup=False,
        )


def _decided(application: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(application)
    else:
        console.print(
            f"application {application['uid']} of {application['principal']} for "
            f"{application['model']}: {application['state']}",
            markup=False,
        )


@access_app.command("grant")
def grant(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="Who.")],
    model: Annotated[str, typer.Argument(help="Which model.")],
    days: Annotated[int, typer.Option(help="Valid for this many days.")] = 90,
    tokens: Annotated[int, typer.Option(help="Tokens per period.")] = 1_000_000,
    period: Annotated[str, typer.Option(help="hour, day, week or month.")] = "day",
    rpm: Annotated[int, typer.Option("--rpm", help="Requests per minute.")] = 60,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Grant a principal access to a model directly (replacing a live grant)."""
    from emeritus.access import Grants, check_terms

    terms = check_terms(days, tokens, period, rpm)
    with open_store(ctx) as store:
        made = Grants(store).grant(principal, model, terms=terms, reason=reason)
    if as_json:
        emit_json(made.to_dict())
    else:
        console.print(
            f"granted {principal} {model} until {day(made.expires_at)}: {tokens:,} tokens a "
            f"{period}, {rpm} requests a minute",
            markup=False,
        )


@access_app.command("revoke")
def revoke(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="Who.")],
    model: Annotated[str, typer.Argument(help="Which model.")],
    reason: WhyOption,
    as_json: JsonOption = False,
) -> None:
    """Revoke a principal's live grant for a model at once, and their keys for it; they cannot
    apply for it again until `reset PRINCIPAL MODEL`."""
    from emeritus.access import Grants

    with open_store(ctx) as store:
        revoked = Grants(store).revoke(principal, model, reason=reason)
    if as_json:
        emit_json(revoked.to_dict())
    else:
        console.print(f"revoked {principal}'s grant for {model}", markup=False)


@access_app.command("grants")
def grants(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List grants, live and ended."""
    from emeritus.access import Grants

    with open_store(ctx) as store:
        rows = [g.to_dict() for g in Grants(store).all(principal=principal, model=model)]
    columns = ["principal", "model", "expires_at", "revoked_at", "token_quota", "period"]
    _show(rows, columns, as_json, "no grants")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="Whose key.")],
    model: Annotated[list[str], typer.Option("--model", help="A model it may be used for.")],
    days: Annotated[int, typer.Option(help="Valid for this many days (at most 366).")] = 90,
    label: Annotated[str, typer.Option(help="A name for the key.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an API key for models the principal holds live grants for. It is shown once: only
    its hash is kept."""
    from emeritus.access import Keys

    with open_store(ctx) as store:
        made = Keys(store).create(principal, model, days=days, label=label)
    if as_json:
        emit_json({"key": made.key, **made.info.to_dict()})
        return
    console.print(made.key, markup=False, soft_wrap=True)
    console.print(
        f"key {made.info.key_id} for {principal}, models {', '.join(made.info.models)}, expires "
        f"{day(made.info.expires_at)}. Store it now: it is not shown again.",
        markup=False,
    )


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (never their secrets)."""
    from emeritus.access import Keys

    with open_store(ctx) as store:
        rows = [k.to_dict() for k in Keys(store).all(principal=principal)]
    _show(rows, ["key_id", "principal", "label", "expires_at", "revoked_at"], as_json, "no keys")


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's public id.")],
    reason: WhyOption,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key at once."""
    from emeritus.access import Keys

    with open_store(ctx) as store:
        revoked = Keys(store).revoke(key_id, reason=reason)
    if as_json:
        emit_json(revoked.to_dict())
    else:
        console.print(f"revoked key {key_id}", markup=False)


@access_app.command("usage")
def usage(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date or time on.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Usage per principal and model: requests, tokens, estimated cost, mean latency."""
    from emeritus.access import usage_totals
    from emeritus.store import parse_when

    start = parse_when(since, what="--since") if since else None
    with open_store(ctx) as store:
        rows = [
            t.to_dict() for t in usage_totals(store, principal=principal, model=model, since=start)
        ]
    columns = ["principal", "model", "requests", "prompt_tokens", "completion_tokens", "cost"]
    _show(rows, [*columns, "mean_latency_ms"], as_json, "no usage recorded")
    if not as_json and rows:
        console.print(f"total estimated cost: {sum(r['cost'] for r in rows):.6f}")


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The account's sign-in name.")],
    role: Annotated[str, typer.Option(help="operator, reviewer or applicant.")],
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the password from this file (default: generate one, shown once).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a console account; a generated password is printed once and never stored."""
    from emeritus.access import Accounts, new_password

    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read {password_file}: {exc.strerror}") from None
    else:
        password = new_password()
    with open_store(ctx) as store:
        account = Accounts(store).add(name, role, password)
    shown = None if password_file else password
    if as_json:
        emit_json({"name": account.name, "role": str(account.role), "password": shown})
        return
    console.print(f"account {account.name} ({account.role})", markup=False)
    if shown:
        console.print(f"  password (shown once): {shown}", markup=False)


@access_app.command("invite")
def invite(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="An existing principal, without an account.")],
    role: Annotated[str, typer.Option(help="operator, reviewer or applicant.")] = "applicant",
    days: Annotated[int, typer.Option(help="Valid for this many days (at most 30).")] = 7,
    tier: Annotated[
        str | None,
        typer.Option(
            help="Move the principal to this tier when the code is used.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Invite a principal to a console account: a one-time code, shown once, stored hashed."""
    from emeritus.access import Invitations
    from emeritus.store import iso

    with open_store(ctx) as store:
        made = Invitations(store).invite(principal, role=role, days=days, tier=tier)
    if as_json:
        emit_json(
            {
                "code": made.code,
                "principal": made.principal,
                "role": str(made.role),
                "expires_at": iso(made.expires_at),
            }
        )
        return
    console.print(made.code, markup=False, soft_wrap=True)
    console.print(
        f"invitation for {made.principal} ({made.role}), once, until {day(made.expires_at)}: "
        "they open /console/invitation on the gateway, enter the code and choose a password. "
        "Send it now: it is not shown again.",
        markup=False,
    )


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Enabled console accounts."""
    from emeritus.access import Accounts

    with open_store(ctx) as store:
        accounts = Accounts(store).all()
    if as_json:
        emit_json([{"name": a.name, "role": str(a.role)} for a in accounts])
        return
    for account in accounts:
        console.print(f"{account.name}  {account.role}", markup=False)


@users_app.command("disable")
def users_disable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The account.")]
) -> None:
    """Disable an account and end its sessions (the account stays in the record)."""
    from emeritus.access import Accounts

    with open_store(ctx) as store:
        Accounts(store).disable(name)
    console.print(f"account {name} disabled", markup=False)
