"""Times as the parts exchange them: ISO 8601 text (`2026-12-01T09:00:00Z`, or with an offset) in
run records, the identity document and the price history, read back as aware datetimes.

One reader for all of them (`as_utc`): a time without an offset is UTC, as AWS writes them.
"""

from __future__ import annotations

import datetime as dt


def as_utc(value: object) -> dt.datetime:
    """`value` as an aware datetime: a datetime as it is (naive ones taken as UTC), anything else
    as ISO 8601 text with `Z`, an offset, or none (UTC). ValueError for text that is no ISO time."""
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
