"""What a sample cost: the one home of the arithmetic a run record states and `capillary costs` sums.

    compute = spot price at the instance's launch (USD/h) x the sample's wall time on the instance
              / the samples sharing the instance at once (the consumer runs one at a time: 1)
    storage = (input + output bytes) / GiB x S3 Standard's price per GB-month, for one month

Both are estimates in US dollars: the compute share uses the price in force when the instance was
launched (a spot price can move while it runs, and AWS bills the price of each period), and the
storage share is one month of S3 Standard at one region's list price. A record without a price
(an on-demand instance, a failed lookup, no IMDS) has no compute share; its storage share stands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CURRENCY = "USD"
# S3 Standard, first 50 TB per month, US East (N. Virginia), as listed in 2026. AWS bills a "GB"
# of storage as 2^30 bytes. Other regions list 0-20 % more; the estimate uses this one price
# everywhere and says so.
S3_STANDARD_USD_PER_GB_MONTH = 0.023
S3_PRICE_SOURCE = "https://aws.amazon.com/s3/pricing/ (S3 Standard, first 50 TB/month, us-east-1)"
GIB = 1024**3
STORAGE_MONTHS = 1
SECONDS_PER_HOUR = 3600

METHOD = (
    "compute_usd = price_usd_per_hour x wall_s / 3600 / samples_sharing_instance, where "
    "price_usd_per_hour is the spot price in force at the instance's launch "
    "(DescribeSpotPriceHistory, Linux/UNIX, its type and zone) and wall_s runs from the message's "
    "receipt to the output's packaging (the upload after it is not counted); "
    "storage_usd = (input_bytes + output_bytes) / 2^30 x s3_usd_per_gb_month x storage_months, "
    "output_bytes being the output files before compression; total_usd = compute_usd + storage_usd, "
    "null when there is no price. An estimate, in USD; S3's price is one region's list price, "
    "used for every region."
)


def sample_cost(
    price_usd_per_hour: float | None,
    wall_s: float,
    input_bytes: int,
    output_bytes: int,
    samples_sharing_instance: int = 1,
) -> dict[str, Any]:
    """The `cost` block of a run record: each share, the figures it was computed from, the method."""
    if samples_sharing_instance < 1:
        raise ValueError(f"samples_sharing_instance: at least 1, got {samples_sharing_instance}")
    wall_s = round(wall_s, 3)  # the basis as stated: the figures recompute from the record
    compute = (
        None
        if price_usd_per_hour is None
        else price_usd_per_hour * wall_s / SECONDS_PER_HOUR / samples_sharing_instance
    )
    storage = (input_bytes + output_bytes) / GIB * S3_STANDARD_USD_PER_GB_MONTH * STORAGE_MONTHS
    return {
        "currency": CURRENCY,
        "estimate": True,
        "compute_usd": None if compute is None else round(compute, 10),
        "storage_usd": round(storage, 10),
        "total_usd": None if compute is None else round(compute + storage, 10),
        "basis": {
            "price_usd_per_hour": price_usd_per_hour,
            "wall_s": wall_s,
            "samples_sharing_instance": samples_sharing_instance,
            "input_bytes": input_bytes,
            "output_bytes": output_bytes,
            "s3_usd_per_gb_month": S3_STANDARD_USD_PER_GB_MONTH,
            "s3_price_source": S3_PRICE_SOURCE,
            "storage_months": STORAGE_MONTHS,
        },
        "method": METHOD,
    }


def cost_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One sample's line of `capillary costs`, from its run record (an older record has no cost)."""
    cost = record.get("cost") or {}
    worker = record.get("worker") or {}
    return {
        "sample": record.get("sample", ""),
        "finished": record.get("finished", ""),
        "engine": (record.get("versions") or {}).get("engine", ""),
        "instance_type": worker.get("instance_type", ""),
        "purchase_option": worker.get("purchase_option", ""),
        "price_usd_per_hour": (cost.get("basis") or {}).get("price_usd_per_hour"),
        "wall_s": (cost.get("basis") or {}).get("wall_s"),
        "compute_usd": cost.get("compute_usd"),
        "storage_usd": cost.get("storage_usd"),
        "total_usd": cost.get("total_usd"),
    }


def cost_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The sums over `rows`; samples without a compute share are counted, not guessed."""
    rows = list(rows)
    compute = [r["compute_usd"] for r in rows if r.get("compute_usd") is not None]
    storage = [r["storage_usd"] for r in rows if r.get("storage_usd") is not None]
    return {
        "currency": CURRENCY,
        "estimate": True,
        "samples": len(rows),
        "samples_without_price": len(rows) - len(compute),
        "compute_usd": round(sum(compute), 10),
        "storage_usd": round(sum(storage), 10),
        "total_usd": round(sum(compute) + sum(storage), 10),
    }
