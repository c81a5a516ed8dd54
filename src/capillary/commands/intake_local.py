"""`capillary intake-local`: feed the real S3 events of a local deployment into the intake handler.

The local AWS endpoint cannot invoke a Lambda, so locally the bucket notifies an SQS events
queue instead; this runner long-polls that queue and passes each S3 event to the same
`capillary.intake.handle_event` the Lambda runs, deleting an event only once it is handled.
A message it cannot handle is logged and left on the queue, whose redrive policy moves it to
the events dead-letter queue; no message stops the runner. With --once, the exit status is 1
when a message was left.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "intake-local",
        help="run the intake handler on a local events queue (where Lambda cannot be invoked)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queue-url", required=True, help="the events queue the bucket notifies")
    parser.add_argument("--once", action="store_true", help="handle what one long poll returns, then exit")
    parser.add_argument(
        "--wait-seconds", type=int, default=20, help="long-poll wait per receive, 0-20 (default: %(default)s)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from capillary.intake.local import main

    return main(queue_url=args.queue_url, once=args.once, wait_seconds=args.wait_seconds)
