"""`emeritus preserve|verify|audit|repair|restore|export-bag|replicate` and `emeritus archive`:
the preservation archive."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from emeritus.cli.deployment import BackendOption, ServerModelOption, UrlOption, override_of
from emeritus.cli.output import JsonOption, byte_progress, console, emit_json, plural, when
from emeritus.cli.root import open_store
from emeritus.cli.runtime import (
    check_behaviour,
    has_fingerprint,
    print_behaviour,
    take_fingerprint,
)
from emeritus.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from emeritus.archive import VerifyReport

archive_app = typer.Typer(
    help="The preservation archive: copies and their state.", no_args_is_help=True
)

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version", help="Which version, e.g. v1 (default: the newest).", show_default=False
    ),
]


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    digits = text.removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidInput(f"bad version {text!r}: expected v1, v2, ...")
    return int(digits)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def preserve(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model.")],
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="A model directory (Hugging Face layout) or files: GGUF, safetensors shards, "
            "tokenizer, config, model card.",
            show_default=False,
        ),
    ],
    fingerprint: Annotated[
        bool,
        typer.Option(
            "--fingerprint/--no-fingerprint",
            help="Take a behavioural fingerprint of GGUF weights right after preserving them.",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Validate the files and preserve them bit-exact in the archive (an OCFL object); for GGUF
    weights, also record a behavioural fingerprint."""
    from emeritus.archive import Archive

    taken = None
    with open_store(ctx) as store:
        archive = Archive(store)
        with byte_progress(f"preserving {model}", enabled=not as_json) as progress:
            result = archive.preserve(model, paths, progress=progress)
        if fingerprint and result.formats.get("gguf") and not has_fingerprint(archive, model):
            taken = take_fingerprint(archive, model)
    if as_json:
        emit_json({**result.to_dict(), "fingerprint": taken})
        return
    if taken:
        console.print(f"behavioural fingerprint {taken} recorded")
    rate = result.bytes_read / result.seconds / 1e6 if result.seconds else 0.0
    if not result.changed:
        console.print(
            f"{model} is already preserved as v{result.version} with these files; nothing changed"
        )
        return
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(result.formats.items())) or "no weight files"
    console.print(
        f"preserved [bold]{model}[/] as v{result.version} of {result.object_id}: "
        f"{len(result.files)} files, {_mb(result.bytes_read)} at {rate:,.0f} MB/s; "
        f"{kinds}, {result.tensors:,} tensors inventoried"
    )


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_dict())
    else:
        for copy in report.copies:
            line = "ok" if copy.ok else plural(len(copy.problems), "problem")
            console.print(f"{report.model} on {copy.copy}: {line}")
            for problem in copy.problems:
                console.print(f"  {problem.path or '(object)'}: {problem.detail}", markup=False)
    if not report.ok:
        first = report.problems[0]
        if as_json:
            raise typer.Exit(IntegrityError.exit_code)
        raise IntegrityError(
            f"{report.model}: {plural(len(report.problems), 'problem')}, first: {first}"
        )


def verify_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    full: Annotated[
        bool,
        typer.Option("--full", help="Re-read every file on every copy and compare both digests."),
    ] = False,
    behaviour: Annotated[
        bool,
        typer.Option(
            "--behaviour", help="Run the model where it is deployed; replay its canaries."
        ),
    ] = False,
    backend_name: BackendOption = None,
    url: UrlOption = None,
    server_model: ServerModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a preserved model on every copy: structure, or with --full every digest; with
    --behaviour, replay its fingerprints token by token."""
    from emeritus.archive import Archive, verify

    override = override_of(backend_name, url, server_model)
    if override is not None and not behaviour:
        raise InvalidInput("--backend and --url choose where --behaviour runs the model")
    if behaviour:
        with open_store(ctx) as store:
            reports = check_behaviour(store, model, override)
        print_behaviour(reports, as_json)
        return
    with (
        open_store(ctx) as store,
        byte_progress(f"verifying {model}", enabled=full and not as_json) as progress,
    ):
        report = verify(Archive(store), model, full=full, progress=progress)
    _print_report(report, as_json)


def audit_command(
    ctx: typer.Context,
    subset: Annotated[
        str,
        typer.Option(
            help="Check the N-th of T slices of all objects and copies, e.g. 3/30 from a daily "
            "cron reads everything once a month."
        ),
    ] = "1/1",
    as_json: JsonOption = False,
) -> None:
    """A rotating full fixity audit across every object and copy (for cron)."""
    from emeritus.archive import Archive, audit, parse_subset

    chosen = parse_subset(subset)
    with (
        open_store(ctx) as store,
        byte_progress(f"auditing {subset}", enabled=not as_json) as progress,
    ):
        reports = audit(Archive(store), subset=chosen, progress=progress)
    bad = [p for r in reports for p in r.problems]
    if as_json:
        emit_json(
            {
                "subset": subset,
                "ok": not bad,
                "checked": [
                    {
                        "model": r.model,
                        "copy": r.copies[0].copy,
                        "ok": r.ok,
                        "problems": [p.to_dict() for p in r.problems],
                    }
                    for r in reports
                ],
            }
        )
        if bad:
            raise typer.Exit(IntegrityError.exit_code)
        return
    console.print(
        f"audited {len(reports)} object copies (slice {subset}): "
        f"{'all intact' if not bad else f'{len(bad)} problems'}"
    )
    for problem in bad:
        console.print(f"  {problem}", markup=False)
    if bad:
        raise IntegrityError(
            f"audit found {plural(len(bad), 'problem')}; run emeritus repair MODEL"
        )


def repair_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    as_json: JsonOption = False,
) -> None:
    """Replace damaged, missing or stray files on any copy from a copy whose digest matches."""
    from emeritus.archive import Archive, repair_copies

    with (
        open_store(ctx) as store,
        byte_progress(f"repairing {model}", enabled=not as_json) as progress,
    ):
        report = repair_copies(Archive(store), model, progress=progress)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.fixed:
        console.print(f"{model}: nothing to repair, every copy is intact")
    for problem in report.fixed:
        console.print(
            f"repaired {problem.copy}: {problem.path or '(object)'} ({problem.kind})", markup=False
        )


def restore(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    dest: Annotated[Path, typer.Argument(help="A new or empty directory.")],
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a preserved version bit-exact into DEST (every digest checked)."""
    from emeritus.archive import Archive

    with (
        open_store(ctx) as store,
        byte_progress(f"restoring {model}", enabled=not as_json) as progress,
    ):
        files = Archive(store).restore(model, dest, version=_version(version), progress=progress)
    if as_json:
        emit_json({"model": model, "dest": str(dest), "files": [str(f) for f in files]})
    else:
        console.print(f"restored {len(files)} files of {model} into {dest}, every digest checked")


def export_bag_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    dest: Annotated[Path, typer.Argument(help="A new or empty directory for the bag.")],
    version: VersionOption = None,
) -> None:
    """Export a preserved version as a BagIt bag, fully validated."""
    from emeritus.archive import Archive, export_bag

    with open_store(ctx) as store:
        export_bag(Archive(store), model, dest, version=_version(version))
    console.print(f"exported {model} as a validated BagIt bag in {dest}")


def replicate_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Bring every replica level with the primary, then check what was copied."""
    from emeritus.archive import Archive, replicate

    with open_store(ctx) as store, byte_progress("replicating", enabled=not as_json) as progress:
        done = replicate(Archive(store), progress=progress)
    if as_json:
        emit_json([r.to_dict() for r in done])
        return
    for r in done:
        what = f"copied {len(r.files)} files, {_mb(r.bytes)}" if r.files else "already level"
        console.print(f"{r.model} → {r.copy}: {what}")


@archive_app.command("status")
def status_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Per object: copies, last full fixity check, NDSA level."""
    from emeritus.archive import Archive, status

    with open_store(ctx) as store:
        objects = status(Archive(store))
    if as_json:
        emit_json([o.to_dict() for o in objects])
        return
    if not objects:
        console.print("nothing preserved yet (see `emeritus preserve`)")
        return
    table = Table("model", "version", "size", "copies", "last full check", "NDSA level")
    for o in objects:
        table.add_row(
            o.model,
            f"v{o.head}",
            _mb(o.size),
            f"{o.complete_copies}/{len(o.copies)}",
            when(o.last_full_check_at),
            str(o.ndsa_level),
        )
    console.print(table)
    for o in objects:
        for c in o.copies:
            if c.last_problem:
                console.print(f"{o.model} on {c.copy}: {c.last_problem}", markup=False)


@archive_app.command("add-replica")
def add_replica(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="A directory, file:///path, or s3://bucket/prefix.")],
    name: Annotated[
        str | None, typer.Option(help="A short name (default replica-N).", show_default=False)
    ] = None,
    location: Annotated[
        str | None,
        typer.Option(
            help="Where it is (site or region); distinct locations raise the NDSA level.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Add a replica; `emeritus replicate` fills it."""
    from emeritus.archive import Archive

    with open_store(ctx) as store:
        record = Archive(store).add_replica(url, name=name, location=location)
    console.print(f"added replica {record.name} at {record.url} ({record.location})")


@archive_app.command("copies")
def copies(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the archive's copies."""
    from emeritus.archive import Archive

    with open_store(ctx) as store:
        records = Archive(store).copies()
    if as_json:
        emit_json(
            [
                {"name": c.name, "url": c.url, "role": c.role, "location": c.location}
                for c in records
            ]
        )
        return
    table = Table("name", "role", "location", "url")
    for c in records:
        table.add_row(c.name, c.role, c.location, c.url)
    console.print(table)
