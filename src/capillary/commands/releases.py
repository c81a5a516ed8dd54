"""`capillary releases check`: new PCGR releases upstream that the catalogue does not know yet."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from capillary.release.watcher import DEFAULT_URL, URL_ENV, UpstreamError

log = logging.getLogger("capillary.release.watcher")

EXIT_UP_TO_DATE = 0
EXIT_ERROR = 1
EXIT_NEW_RELEASES = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "releases",
        help="compare PCGR's upstream releases with the release catalogue",
        description="Release catalogue maintenance.",
    )
    sub = parser.add_subparsers(dest="releases_command", metavar="ACTION")
    chk = sub.add_parser(
        "check",
        help="report upstream releases missing from the catalogue and print the entries to fill in",
        description=(
            f"Exit status: {EXIT_UP_TO_DATE} up to date, {EXIT_NEW_RELEASES} new releases upstream, "
            f"{EXIT_ERROR} the releases or the catalogue could not be read."
        ),
    )
    chk.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"GitHub releases API URL (default ${URL_ENV} or {DEFAULT_URL})",
    )
    chk.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="catalogue file (default: the one shipped in the package)",
    )
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.add_argument("--include-prereleases", action="store_true", help="count prereleases as releases")
    chk.set_defaults(func=run_check)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_check(args: argparse.Namespace) -> int:
    # Imported here: every `capillary` command (the worker's `consume` too) builds this parser,
    # and the catalogue needs PyYAML, a controller-only dependency.
    from capillary.release.catalogue import CatalogueError, load_catalogue
    from capillary.release.watcher import check

    try:
        catalogue = load_catalogue(args.catalogue)
        report = check(
            args.url,
            catalogue,
            include_prereleases=args.include_prereleases,
            token=os.environ.get("GITHUB_TOKEN") or None,
        )
    except (UpstreamError, CatalogueError) as exc:
        # One line for the person (the log at debug only: the same words twice is noise).
        log.debug("release check failed: %s", exc, extra={"phase": "releases", "reason": str(exc)})
        print(f"capillary releases check: {exc}", file=sys.stderr)
        return EXIT_ERROR
    status = EXIT_UP_TO_DATE if report.up_to_date else EXIT_NEW_RELEASES
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return status
    newest = max(catalogue.versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    if report.up_to_date:
        print(f"catalogue up to date: newest upstream release is in the catalogue (newest known {newest})")
    else:
        print(f"{len(report.new)} new PCGR release(s) upstream, newer than the catalogue's {newest}:")
        for release in report.new:
            print(f"  {release.version}  tag {release.tag}  {release.published_at}  {release.url}")
        print(f"\nAdd to {catalogue.path} under `releases:` and fill in the TODOs:\n")
        for release in report.new:
            print(report.entries[release.version])
    if report.older_untracked:
        older = ", ".join(r.version for r in report.older_untracked)
        print(f"older upstream releases not in the catalogue (not baked): {older}")
    return status
