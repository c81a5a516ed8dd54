# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

"""Spot price statistics and pool selection, as plain functions over AWS response rows.

Nothing here talks to AWS: the module fetches DescribeSpotPriceHistory and DescribeInstanceTypes
pages and hands their rows over, so the selection is unit-tested on real response shapes.

A spot price is a step function: each observation holds from its timestamp until the next one
for the same (instance type, zone, product). AWS returns, besides the observations inside the
window, the one in force at its start. The statistics therefore weigh each price by how long it
held inside the window: a price that held for 23 hours counts 23 times as much as one that held
for one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math

STRATEGIES = ("cheapest", "stable", "balanced")
ARCHITECTURES = ("x86_64", "arm64")


class SpotSelectionError(ValueError):
    """Input the selection cannot work with, named with the reason."""


def _as_utc(value):
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, str):
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
    raise SpotSelectionError("timestamp %r is neither a datetime nor an ISO 8601 string" % (value,))


def _iso(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(now, lookback_hours):
    """(start, end) of the lookback window ending at `now`."""
    if lookback_hours is None or lookback_hours <= 0:
        raise SpotSelectionError(
            "lookback_hours must be a positive number of hours, got %r" % (lookback_hours,)
        )
    end = _as_utc(now)
    return end - datetime.timedelta(hours=lookback_hours), end


def price_statistics(history, start, end):
    """One row per (instance type, zone, product description) seen in `history`.

    `history` holds DescribeSpotPriceHistory `SpotPriceHistory` rows from every page, in any
    order. Each row of the result carries the price in force at `end` (`current_price`), the
    minimum, time-weighted mean and maximum of the prices in force during [start, end], and
    how many observations the window held (the one in force at `start` included).
    """
    start, end = _as_utc(start), _as_utc(end)
    if start >= end:
        raise SpotSelectionError(
            "the window is empty: start %s is not before end %s" % (_iso(start), _iso(end))
        )
    series = {}
    for row in history:
        try:
            key = (row["InstanceType"], row["AvailabilityZone"], row.get("ProductDescription", "Linux/UNIX"))
            point = (_as_utc(row["Timestamp"]), float(row["SpotPrice"]))
        except (KeyError, TypeError, ValueError) as e:
            raise SpotSelectionError(
                "spot price row %r is not in DescribeSpotPriceHistory shape: %s" % (row, e)
            ) from e
        series.setdefault(key, set()).add(point)

    rows = []
    for (instance_type, zone, product), points in series.items():
        ordered = sorted(p for p in points if p[0] <= end)
        # The price in force at `start` is the last one stamped at or before it.
        before = [p for p in ordered if p[0] <= start]
        inside = [p for p in ordered if p[0] > start]
        held = ([(start, before[-1][1])] if before else []) + inside
        if not held:
            continue
        weighted = 0.0
        for i, (since, price) in enumerate(held):
            until = held[i + 1][0] if i + 1 < len(held) else end
            weighted += price * (until - since).total_seconds()
        covered = (end - held[0][0]).total_seconds()
        prices = [price for dummy, price in held]
        rows.append(
            {
                "instance_type": instance_type,
                "availability_zone": zone,
                "product_description": product,
                "current_price": held[-1][1],
                "min_price": min(prices),
                "mean_price": round(weighted / covered, 6) if covered > 0 else held[-1][1],
                "max_price": max(prices),
                "observations": len(held),
                "last_change": _iso(held[-1][0]) if held[-1][0] > start else _iso(before[-1][0]),
            }
        )
    rows.sort(key=lambda r: (r["instance_type"], r["availability_zone"], r["product_description"]))
    return rows


def score(row, strategy):
    """The number a pool is ranked by (lower is better).

    - `cheapest`: the current price, what a launch pays now;
    - `stable`: the maximum over the window, the worst this pool charged lately;
    - `balanced`: (current + mean + max) / 3, the price now tempered by the window's typical
      and worst prices, so a pool that is cheap this minute but spiky loses to a steady one.
    """
    if strategy == "cheapest":
        return row["current_price"]
    if strategy == "stable":
        return row["max_price"]
    if strategy == "balanced":
        return round((row["current_price"] + row["mean_price"] + row["max_price"]) / 3, 6)
    raise SpotSelectionError("strategy %r is not one of %s" % (strategy, ", ".join(STRATEGIES)))


def select(stats, strategy="cheapest", max_price=None, zone_subnets=None, on_demand_prices=None):
    """Rank the pools that fit, pick the best, and explain when none does.

    `zone_subnets` maps an availability zone to the subnet ids given in it; when set, only those
    zones are candidates and each candidate carries its first subnet. `on_demand_prices` maps an
    instance type to its on-demand hourly price for savings figures. Returns a dict with
    `candidates` (ranked, `[]` when nothing fits), `choice` (`{}` when nothing fits) and `msg`.
    """
    if strategy not in STRATEGIES:
        raise SpotSelectionError("strategy %r is not one of %s" % (strategy, ", ".join(STRATEGIES)))
    if max_price is not None and (not isinstance(max_price, (int, float)) or max_price <= 0):
        raise SpotSelectionError("max_price must be a positive hourly price in USD, got %r" % (max_price,))
    # Numbers may arrive as strings (extra vars, templated dicts); anything else is named.
    on_demand = {}
    for instance_type, price in (on_demand_prices or {}).items():
        try:
            value = None if isinstance(price, bool) else float(price)
        except (TypeError, ValueError):
            value = None
        if value is None or value <= 0:
            raise SpotSelectionError(
                "on_demand_prices[%s] must be a positive hourly price in USD, got %r" % (instance_type, price)
            )
        on_demand[instance_type] = value
    on_demand_prices = on_demand

    over_cap = 0
    outside_subnets = 0
    candidates = []
    for row in stats:
        if zone_subnets is not None and row["availability_zone"] not in zone_subnets:
            outside_subnets += 1
            continue
        if max_price is not None and row["current_price"] > max_price:
            over_cap += 1
            continue
        candidate = dict(row)
        candidate["score"] = score(row, strategy)
        if zone_subnets is not None:
            candidate["subnet_id"] = zone_subnets[row["availability_zone"]][0]
        on_demand = on_demand_prices.get(row["instance_type"])
        if on_demand is not None:
            candidate["on_demand_price"] = float(on_demand)
            candidate["savings_per_hour"] = round(on_demand - row["current_price"], 6)
            candidate["savings_percent"] = round(100.0 * (1 - row["current_price"] / on_demand), 1)
        candidates.append(candidate)

    candidates.sort(
        key=lambda c: (
            c["score"],
            c["current_price"],
            c["max_price"],
            c["instance_type"],
            c["availability_zone"],
            c["product_description"],
        )
    )
    for rank, candidate in enumerate(candidates, start=1):
        candidate["rank"] = rank

    if candidates:
        best = candidates[0]
        msg = "%d of %d pools fit; chose %s in %s at %.6f USD/h (%s)" % (
            len(candidates),
            len(stats),
            best["instance_type"],
            best["availability_zone"],
            best["current_price"],
            strategy,
        )
        return {"candidates": candidates, "choice": dict(best), "msg": msg}

    if not stats:
        msg = "no spot price history for the requested instance types, zones and product descriptions"
    else:
        reasons = []
        if over_cap:
            reasons.append("%d priced above the cap of %s USD/h" % (over_cap, max_price))
        if outside_subnets:
            reasons.append("%d in zones without a given subnet" % outside_subnets)
        msg = "no spot pool fits: of %d pools, %s" % (len(stats), " and ".join(reasons))
    return {"candidates": [], "choice": {}, "msg": msg}


def zone_subnets_from(subnets, requested):
    """{zone: [subnet ids in the order given]} from DescribeSubnets rows.

    Fails naming every requested subnet the API did not return.
    """
    found = {}
    for subnet in subnets:
        found[subnet["SubnetId"]] = subnet["AvailabilityZone"]
    missing = [s for s in requested if s not in found]
    if missing:
        raise SpotSelectionError("subnets not found: %s" % ", ".join(missing))
    zones = {}
    for subnet_id in requested:
        zones.setdefault(found[subnet_id], []).append(subnet_id)
    return zones


def types_meeting(instance_types, requirements):
    """Instance type names from DescribeInstanceTypes rows that meet `requirements`.

    `requirements`: `min_vcpus`, `min_memory_mib` (required), `max_vcpus`, `max_memory_mib`
    (optional upper bounds, to keep a large machine from winning on price per instance) and
    `architecture` (`x86_64` or `arm64`).
    """
    for name in ("min_vcpus", "min_memory_mib"):
        value = requirements.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpotSelectionError("requirements.%s must be a positive integer, got %r" % (name, value))
    architecture = requirements.get("architecture") or "x86_64"
    if architecture not in ARCHITECTURES:
        raise SpotSelectionError(
            "requirements.architecture %r is not one of %s" % (architecture, ", ".join(ARCHITECTURES))
        )
    max_vcpus = requirements.get("max_vcpus") or math.inf
    max_memory = requirements.get("max_memory_mib") or math.inf
    chosen = set()
    for row in instance_types:
        vcpus = row.get("VCpuInfo", {}).get("DefaultVCpus", 0)
        memory = row.get("MemoryInfo", {}).get("SizeInMiB", 0)
        archs = row.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
        usage = row.get("SupportedUsageClasses", ["spot"])
        if (
            requirements["min_vcpus"] <= vcpus <= max_vcpus
            and requirements["min_memory_mib"] <= memory <= max_memory
            and architecture in archs
            and "spot" in usage
        ):
            chosen.add(row["InstanceType"])
    return sorted(chosen)
