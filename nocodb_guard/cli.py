"""The ``nocodb-guard`` command: thin, maps errors to exit codes.

Exit codes (stable, documented in the README):

====  ==========================================================================
0     done (sweep: every row decided; health: healthy; check: no problem;
      evaluate: no false approval or rejection at the configured tolerances;
      history: some decision matched)
1     some rows deferred / health failing / check found problems / ``sweep --recheck-approved``
      (without ``--apply``): some approved row would now be rejected or sent to review / evaluate:
      false approvals, false rejections or approved swaps of a stranger / history: nothing matched
2     bad settings, bad references or a broken face stack
3     NocoDB unreachable or the token / table refused
4     another sweep is already running on this host
70    internal error (a bug): one line on stderr, every configured secret redacted
130   interrupted (Ctrl-C)
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog

from nocodb_guard import __version__
from nocodb_guard.errors import ConfigError, GuardError, NocoDBUnavailable, Stop
from nocodb_guard.faces.cpu import require_avx
from nocodb_guard.logs import Redactor, configure_logging, settings_secrets
from nocodb_guard.models import Action, Verdict
from nocodb_guard.settings import Settings, load_settings

EXIT_OK, EXIT_DEFERRED, EXIT_CONFIG, EXIT_NOCODB, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_INTERNAL = 70  # EX_SOFTWARE (sysexits.h)
#: Longest error message printed: an exception may quote a whole response or header.
MAX_ERROR_CHARS = 500

log = structlog.get_logger("nocodb_guard.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nocodb-guard",
        description="Moderate a NocoDB upload table: exactly one face, and the right one.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_inspection_commands(sub)
    _add_moderation_commands(sub)
    _add_trust_commands(sub)
    for subparser in sub.choices.values():
        _add_common(subparser, top_level=False)
    return parser


Subparsers = argparse._SubParsersAction  # argparse exposes no public name for it


def _add_inspection_commands(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Commands that look and change nothing: explain, references, check."""
    explain = sub.add_parser("explain", help="show what the pipeline sees in pictures")
    explain.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    who = explain.add_mutually_exclusive_group(required=True)
    who.add_argument("--politician", help="form option whose references to compare with")
    who.add_argument("--reference", nargs="+", type=Path, metavar="PHOTO",
                     help="compare with these photos instead")
    explain.add_argument("--tolerance", type=float, help="override the tolerance")
    explain.add_argument("--json", action="store_true", help="print a JSON list")

    refs = sub.add_parser("references", help="list politicians, their references and cache")
    refs.add_argument("--json", action="store_true")
    refs.add_argument("politicians", nargs="*", help="labels (default: configured + NocoDB's)")

    check = sub.add_parser("check", help="settings, NocoDB, table schema and references")
    check.add_argument("--json", action="store_true")


def _add_moderation_commands(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Commands that moderate the table: sweep, run, health."""
    sweep = sub.add_parser("sweep", help="one moderation pass over pending rows")
    sweep.add_argument("--dry-run", action="store_true", help="decide everything, change nothing")
    sweep.add_argument("--limit", type=int, help="at most N rows")
    sweep.add_argument("--json", action="store_true", help="print one JSON object")
    sweep.add_argument("--recheck-approved", action="store_true",
                       help="re-evaluate rows already approved; report those that now fail")
    sweep.add_argument("--apply", action="store_true", help="with --recheck-approved: act on them")

    purge = sub.add_parser("purge", help="remove files NocoDB kept for rows that are gone")
    purge.add_argument("--orphans", action="store_true", required=True,
                       help="files of the table's attachment field that no row references")
    purge.add_argument("--dry-run", action="store_true", help="list them, remove nothing")
    purge.add_argument("--older-than", default="24h",
                       help="only files first seen at least this long ago (default 24h)")
    purge.add_argument("--json", action="store_true")

    sub.add_parser("run", help="the service: poll, sweep, repeat (systemd/container)")

    health = sub.add_parser("health", help="exit 0 when the daemon's last sweep is recent")
    health.add_argument("--max-age", type=float, help="seconds (default: heartbeat_max_age)")
    health.add_argument("--json", action="store_true", help="print one JSON object")


def _add_trust_commands(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """Commands that measure and explain the verdicts: evaluate, history."""
    evaluate = sub.add_parser("evaluate", help="calibrate tolerances on labelled photos")
    evaluate.add_argument("directory", type=Path, metavar="DIR")
    evaluate.add_argument("--self", dest="self_mode", action="store_true",
                          help="draw references from DIR itself, one source photo at a time")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--plot", type=Path, metavar="PNG", help="write a distance plot")
    evaluate.add_argument("--swaps", action="store_true", help="add synthetic face swaps (slow)")

    history = sub.add_parser("history", help="why was a row decided as it was")
    history.add_argument("--row", type=int)
    history.add_argument("--since", help="ISO date/time or a duration like 2h, 3d")
    history.add_argument("--verdict", choices=[v.value for v in Verdict])
    history.add_argument("--json", action="store_true")


def _add_common(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Options accepted before or after the command (``nocodb-guard run --config F`` works).

    On sub-commands the default is SUPPRESS, so that an option given before the command is
    not reset by the sub-parser's own default.
    """
    default: Any = None if top_level else argparse.SUPPRESS
    parser.add_argument("--config", type=Path, default=default,
                        help="TOML settings file (or NOCODB_GUARD_CONFIG)")
    parser.add_argument("--env-file", type=Path, default=default,
                        help="dotenv file (e.g. .nocodb-dev/guard.env)")
    parser.add_argument("--secrets-dir", type=Path, default=default,
                        help="folder holding the file nocodb_token")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        default=default)
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default=default)
    parser.add_argument("--workers", type=int, default=default,
                        help="face worker processes (0: in-process)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (see module doc)."""
    args = build_parser().parse_args(argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)  # a StringIO has none
    if reconfigure is not None:  # text no encoding can carry (a lone surrogate): escaped
        reconfigure(errors="backslashreplace")
    code = _run_guarded(args)
    sys.stdout.flush()
    return code


def _run_guarded(args: argparse.Namespace) -> int:
    """Run the command; every way out is one redacted line on stderr and a documented code.

    The catch-all matters for secrets: an uncaught exception would print a traceback, and
    some exceptions quote what was sent (an HTTP library quotes a bad header, token and
    all). Tracebacks of unexpected errors go to the (redacted) debug log instead.
    """
    redactor = Redactor()
    try:
        settings = _settings(args)
        redactor = Redactor(settings_secrets(settings))
        _configure_logging(settings, sys.stdout if args.command == "run" else sys.stderr)
        if args.command in FACE_COMMANDS:
            require_avx()  # before anything: workers would each die of SIGILL, silently
        return COMMANDS[args.command](args, settings)
    except Stop as exc:
        return _fail(str(exc), exc.exit_code, redactor)
    except NocoDBUnavailable as exc:
        return _fail(f"NocoDB unavailable: {exc}", EXIT_NOCODB, redactor)
    except GuardError as exc:
        return _fail(str(exc), EXIT_DEFERRED, redactor)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, redactor)
    except Exception as exc:  # the last line of defence: a bug, said without a secret
        log.debug("unexpected_error", exc_info=True)
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL, redactor)


def _fail(message: str, code: int, redactor: Redactor) -> int:
    """Say what went wrong on stderr, on one line, secrets cut out; return the exit code."""
    line = " ".join(redactor.scrub(message).split())[:MAX_ERROR_CHARS]
    print(f"nocodb-guard: error: {line}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace) -> Settings:
    names = ("log_level", "log_format", "workers")
    overrides = {n: v for n in names if (v := getattr(args, n, None)) is not None}
    from_env = os.environ.get("NOCODB_GUARD_CONFIG")
    config = args.config or (Path(from_env) if from_env else None)
    return load_settings(config, args.env_file, args.secrets_dir, **overrides)


def _configure_logging(settings: Settings, stream: TextIO) -> None:
    secrets = settings_secrets(settings)
    # Logs go to stderr for one-shot commands so that --json on stdout stays parseable;
    # the daemon logs to stdout (journald / podman collect it).
    configure_logging(settings.log_level, settings.log_format, stream=stream, secrets=secrets)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# --- commands --------------------------------------------------------------------------------
def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.trust.explain import explain_pictures  # noqa: PLC0415

    results = explain_pictures(
        settings, args.images, politician=args.politician, reference_photos=args.reference,
        tolerance=args.tolerance,
    )
    if args.json:
        _print_json(results)
    else:
        from nocodb_guard.report import explain_text  # noqa: PLC0415

        print("\n".join(explain_text(r) for r in results))
    return EXIT_OK


def cmd_references(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.checks import describe_references  # noqa: PLC0415

    report, ok = describe_references(settings, args.politicians)
    if args.json:
        _print_json(report)
    else:
        print(_references_text(report))
    return EXIT_OK if ok else EXIT_CONFIG


def _references_text(report: list[dict[str, Any]]) -> str:
    lines = []
    for entry in report:
        lines.append(f"{entry['politician']}  ->  {entry['folder']}  "
                     f"(tolerance {entry['tolerance']}): {entry['status']}")
        for file in entry["files"]:
            cached = "cached" if file.get("cached") else "not cached"
            problem = f"  ERROR: {file['error']}" if file.get("error") else ""
            lines.append(f"    {file['name']}  [{cached}]{problem}")
    return "\n".join(lines) or "no politicians configured"


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.checks import run_checks  # noqa: PLC0415

    results = run_checks(settings)
    if args.json:
        _print_json([r.as_dict() for r in results])
    else:
        for result in results:
            print(f"[{'ok' if result.ok else 'FAIL'}] {result.name}: {result.message}")
    if all(r.ok for r in results):
        return EXIT_OK
    return max(r.exit_code for r in results if not r.ok)


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.oneshot import run_one_sweep  # noqa: PLC0415
    from nocodb_guard.report import outcome_json, outcome_line, summary_text, table  # noqa: PLC0415
    from nocodb_guard.service.locking import sweep_lock  # noqa: PLC0415
    from nocodb_guard.service.signals import Flags  # noqa: PLC0415

    if args.apply and not args.recheck_approved:
        raise ConfigError("--apply goes with --recheck-approved")
    flags = Flags()
    flags.install_signal_handlers()
    progress = None
    if sys.stderr.isatty() and not args.json:
        progress = lambda outcome: print(outcome_line(outcome), file=sys.stderr)  # noqa: E731
    with sweep_lock(settings.state_dir):
        result = run_one_sweep(
            settings, dry_run=args.dry_run, limit=args.limit, flags=flags, on_outcome=progress,
            recheck_approved=args.recheck_approved, apply=args.apply,
        )
    if args.json:
        _print_json({"rows": [outcome_json(o) for o in result.outcomes],
                     "summary": result.summary()})
    else:
        if result.outcomes and progress is None:
            print(table(result.outcomes))
        print(summary_text(result.summary()))
    if result.audit_error:
        print(f"nocodb-guard: error: the audit trail in {settings.state_dir} cannot be written "
              f"({result.audit_error}): rows deferred, not acted on", file=sys.stderr)
    if result.error:
        return EXIT_NOCODB
    # A re-check that only reports exits 1 when an approved row would now be rejected or
    # sent to review: a cron job or a monitor can alert on it before anyone runs --apply.
    would = (Action.WOULD_REJECT, Action.WOULD_REVIEW)
    would_change = any(o.action in would for o in result.outcomes)
    return EXIT_DEFERRED if result.deferred or result.stopped_early or would_change else EXIT_OK


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime  # noqa: PLC0415

    from nocodb_guard.nocodb.client import NocoDBClient  # noqa: PLC0415
    from nocodb_guard.service.locking import sweep_lock  # noqa: PLC0415
    from nocodb_guard.storage.orphans import purge_orphans  # noqa: PLC0415
    from nocodb_guard.trust.audit import parse_since  # noqa: PLC0415

    try:
        now = datetime.now(UTC)
        older_than = (now - parse_since(args.older_than, now)).total_seconds()
    except ValueError as exc:
        raise ConfigError(str(exc).replace("--since", "--older-than")) from None
    with NocoDBClient(settings) as client, sweep_lock(settings.state_dir):
        report = purge_orphans(settings, client, older_than=older_than, dry_run=args.dry_run)
    rows = report.rows()
    if args.json:
        _print_json({"orphans": rows, "dry_run": args.dry_run})
    else:
        for row in rows:
            print(f"{row['status']:<16} {row['file']}  {row['detail']}".rstrip())
        note = " (dry run: nothing removed)" if args.dry_run else ""
        print(f"{len(rows)} orphaned file(s){note}")
    return EXIT_OK if report.complete else EXIT_DEFERRED


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.service.daemon import run_daemon  # noqa: PLC0415

    return run_daemon(settings)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.service.health import check_health  # noqa: PLC0415

    status = check_health(settings.state_dir, args.max_age or settings.heartbeat_max_age)
    if args.json:
        _print_json(status.as_json())
    else:
        print(status.message)
    return EXIT_OK if status.ok else EXIT_DEFERRED


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.faces.see import PipelineConfig, make_engine  # noqa: PLC0415
    from nocodb_guard.trust import evaluate  # noqa: PLC0415

    config = PipelineConfig.from_settings(settings)
    report = evaluate.evaluate_dir(
        args.directory,
        encode_photo=evaluate.make_photo_encoder(config, engine := make_engine(config)),
        mode="self" if args.self_mode else "configured",
        targets=() if args.self_mode else evaluate.configured_targets(settings),
        tolerance=settings.tolerance,
        encode_swap=evaluate.make_swap_encoder(config, engine) if args.swaps else None,
    )
    if args.json:
        _print_json(evaluate.to_json(report))
    else:
        print(evaluate.render_text(report))
    if args.plot:  # after the report: a missing matplotlib must not cost the measurements
        evaluate.plot_png(report, args.plot)
    return EXIT_OK if report.passed else EXIT_DEFERRED


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from nocodb_guard.trust.audit import AuditLog, format_record, parse_since  # noqa: PLC0415

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None  # the message names --since already
    try:
        audit = AuditLog(settings.state_dir, settings.audit_retention_days)
        records = list(audit.query(row_id=args.row, since=since, verdict=args.verdict))
    except OSError as exc:  # e.g. the daemon's private state dir, read as another user
        raise ConfigError(f"cannot read the audit trail in {settings.state_dir}: {exc}") from None
    if args.json:
        _print_json(records)
    else:
        print("\n".join(format_record(r) for r in records) or "no matching decisions")
    return EXIT_OK if records else EXIT_DEFERRED


#: Commands that judge pictures, hence need dlib (and a CPU it runs on).
FACE_COMMANDS = frozenset({"explain", "references", "check", "sweep", "run", "evaluate"})
COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "explain": cmd_explain,
    "references": cmd_references,
    "check": cmd_check,
    "sweep": cmd_sweep,
    "purge": cmd_purge,
    "run": cmd_run,
    "health": cmd_health,
    "evaluate": cmd_evaluate,
    "history": cmd_history,
}

