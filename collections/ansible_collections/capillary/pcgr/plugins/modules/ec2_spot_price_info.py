#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_spot_price_info
version_added: 0.1.0
short_description: Rank EC2 spot pools by their price history and pick one
description:
  - Reads EC2 spot price history (C(DescribeSpotPriceHistory)) over a lookback window for a set of
    instance types, or for every type meeting minimum vCPU and memory requirements, in the region's
    zones or only in given zones or subnets.
  - Returns, per (instance type, availability zone, product description), the current price and the
    minimum, time-weighted mean and maximum over the window, then ranks the pools under an optional
    price cap by a strategy and returns the best as RV(choice).
  - A spot price is a step function; the mean weighs each price by how long it held inside the
    window, counting the price in force when the window opened.
  - When nothing fits, RV(candidates) is V([]), RV(choice) is V({}) and RV(msg) says why. The module
    does not fail in that case, so a playbook can fall back to on-demand capacity.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  instance_types:
    description:
      - Instance types to consider, for example V(m5.xlarge).
      - Mutually exclusive with O(requirements); one of the two is required.
    type: list
    elements: str
  requirements:
    description:
      - Consider every instance type that can run as spot and meets these requirements, resolved
        through C(DescribeInstanceTypes). Set upper bounds too, or a much larger type may win.
      - Mutually exclusive with O(instance_types); one of the two is required.
    type: dict
    suboptions:
      min_vcpus:
        description: Minimum number of default vCPUs.
        type: int
        required: true
      min_memory_mib:
        description: Minimum memory in MiB.
        type: int
        required: true
      max_vcpus:
        description: Maximum number of default vCPUs, so that a much larger type cannot win.
        type: int
      max_memory_mib:
        description: Maximum memory in MiB.
        type: int
      architecture:
        description: Processor architecture.
        type: str
        choices: [x86_64, arm64]
        default: x86_64
  availability_zones:
    description:
      - Only consider these availability zones.
      - Mutually exclusive with O(subnets).
    type: list
    elements: str
  subnets:
    description:
      - Only consider the availability zones of these subnet ids; each candidate carries the first
        given subnet of its zone as RV(candidates[].subnet_id).
      - Mutually exclusive with O(availability_zones).
    type: list
    elements: str
  product_descriptions:
    description:
      - Product descriptions to read prices for, passed as C(ProductDescriptions).
    type: list
    elements: str
    default: [Linux/UNIX]
    aliases: [product_description]
  lookback_hours:
    description:
      - Length of the price history window, ending now, in hours.
    type: int
    default: 24
  max_price:
    description:
      - Price cap in USD per hour. Pools whose current price is above it are not candidates.
    type: float
  strategy:
    description:
      - How candidates are ranked, lowest first.
      - V(cheapest) ranks by the current price.
      - V(stable) ranks by the maximum price over the window, so a pool that spiked loses.
      - V(balanced) ranks by (current + mean + maximum) / 3.
      - Ties are broken by current price, maximum price, then type and zone names.
    type: str
    choices: [cheapest, stable, balanced]
    default: cheapest
  on_demand_prices:
    description:
      - On-demand hourly prices in USD keyed by instance type, for the savings figures.
    type: dict
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Read-only; supports check mode and runs the same in it.
  - Requires the C(ec2:DescribeSpotPriceHistory) permission, plus C(ec2:DescribeInstanceTypes) with
    O(requirements) and C(ec2:DescribeSubnets) with O(subnets).
"""

EXAMPLES = r"""
- name: Pick the cheapest pool for a PCGR worker under a cap
  capillary.pcgr.ec2_spot_price_info:
    region: eu-west-1
    instance_types: [m5.xlarge, m6i.xlarge, c5.2xlarge, r5.xlarge]
    subnets: [subnet-0123456789abcdef0, subnet-0fedcba9876543210]
    max_price: 0.12
    on_demand_prices:
      m5.xlarge: 0.214
      m6i.xlarge: 0.214
  register: spot

- name: Show the choice
  ansible.builtin.debug:
    msg: >-
      {{ spot.choice.instance_type }} in {{ spot.choice.availability_zone }}
      at {{ spot.choice.current_price }} USD/h
  when: spot.choice | length > 0

- name: Rank every type with at least 4 vCPUs and 16 GiB by its worst price of the last 3 days
  capillary.pcgr.ec2_spot_price_info:
    requirements:
      min_vcpus: 4
      min_memory_mib: 16384
      max_vcpus: 8
    lookback_hours: 72
    strategy: stable
  register: stable_pools
"""

RETURN = r"""
prices:
  description: Statistics per (instance type, availability zone, product description) over the window.
  returned: always
  type: list
  elements: dict
  contains:
    instance_type:
      description: The instance type.
      type: str
      sample: m5.xlarge
    availability_zone:
      description: The availability zone.
      type: str
      sample: eu-west-1a
    product_description:
      description: The product description.
      type: str
      sample: Linux/UNIX
    current_price:
      description: Price in force at the end of the window, USD per hour.
      type: float
      sample: 0.0712
    min_price:
      description: Lowest price in force during the window.
      type: float
      sample: 0.0689
    mean_price:
      description: Mean price over the window, each price weighted by how long it held.
      type: float
      sample: 0.0721
    max_price:
      description: Highest price in force during the window.
      type: float
      sample: 0.0805
    observations:
      description: Prices in force during the window, the one in force at its start included.
      type: int
      sample: 17
    last_change:
      description: When the current price took effect (UTC, ISO 8601).
      type: str
      sample: "2026-11-21T04:00:00Z"
candidates:
  description:
    - The pools that fit the cap and the zones, best first. V([]) when none fits.
    - Each carries the keys of RV(prices) plus the ones below.
  returned: always
  type: list
  elements: dict
  contains:
    rank:
      description: Position in the ranking, from 1.
      type: int
      sample: 1
    score:
      description: The value ranked by under O(strategy).
      type: float
      sample: 0.0712
    subnet_id:
      description: The first given subnet in the candidate's zone.
      returned: when O(subnets) was given
      type: str
      sample: subnet-0123456789abcdef0
    on_demand_price:
      description: The on-demand price given for the type.
      returned: when O(on_demand_prices) has the type
      type: float
      sample: 0.214
    savings_per_hour:
      description: On-demand minus current spot price, USD per hour.
      returned: when O(on_demand_prices) has the type
      type: float
      sample: 0.1428
    savings_percent:
      description: Savings against on-demand, percent.
      returned: when O(on_demand_prices) has the type
      type: float
      sample: 66.7
choice:
  description: The first candidate, or V({}) when none fits.
  returned: always
  type: dict
  sample:
    instance_type: m5.xlarge
    availability_zone: eu-west-1a
    current_price: 0.0712
    rank: 1
    subnet_id: subnet-0123456789abcdef0
instance_types:
  description: The instance types whose prices were read (the resolved list with O(requirements)).
  returned: always
  type: list
  elements: str
  sample: [m5.xlarge, m6i.xlarge]
window:
  description: The lookback window (UTC, ISO 8601).
  returned: always
  type: dict
  contains:
    start:
      description: Start of the window.
      type: str
      sample: "2026-11-20T06:00:00Z"
    end:
      description: End of the window.
      type: str
      sample: "2026-11-21T06:00:00Z"
msg:
  description: What was chosen, or why nothing fits.
  returned: always
  type: str
  sample: "12 of 12 pools fit; chose m5.xlarge in eu-west-1a at 0.071200 USD/h (cheapest)"
"""

import datetime

try:  # noqa: SIM105 - amazon.aws's import guard; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.capillary.pcgr.plugins.module_utils.spot_price import (
    ARCHITECTURES,
    STRATEGIES,
    SpotSelectionError,
    price_statistics,
    select,
    types_meeting,
    window,
    zone_subnets_from,
)

# The module's own options (region, endpoint and credentials come from AnsibleAWSModule).
# A unit test compares this with DOCUMENTATION, so they cannot drift apart.
ARGUMENT_SPEC = dict(
    instance_types=dict(type="list", elements="str"),
    requirements=dict(
        type="dict",
        options=dict(
            min_vcpus=dict(type="int", required=True),
            min_memory_mib=dict(type="int", required=True),
            max_vcpus=dict(type="int"),
            max_memory_mib=dict(type="int"),
            architecture=dict(type="str", choices=list(ARCHITECTURES), default="x86_64"),
        ),
    ),
    availability_zones=dict(type="list", elements="str"),
    subnets=dict(type="list", elements="str"),
    product_descriptions=dict(
        type="list", elements="str", default=["Linux/UNIX"], aliases=["product_description"]
    ),
    lookback_hours=dict(type="int", default=24),
    max_price=dict(type="float"),
    strategy=dict(type="str", choices=list(STRATEGIES), default="cheapest"),
    on_demand_prices=dict(type="dict"),
)
MUTUALLY_EXCLUSIVE = [("instance_types", "requirements"), ("availability_zones", "subnets")]
REQUIRED_ONE_OF = [("instance_types", "requirements")]


@AWSRetry.jittered_backoff()
def _all_pages(client, operation, **params):
    # Paginators bypass the client's retry decorator, so a throttled page retries the whole walk.
    return client.get_paginator(operation).paginate(**params).build_full_result()


def resolve_instance_types(client, requirements):
    # Only the architecture is filtered server-side: the API filters on exact values, not minimums.
    filters = [{"Name": "processor-info.supported-architecture", "Values": [requirements["architecture"]]}]
    rows = _all_pages(client, "describe_instance_types", Filters=filters)["InstanceTypes"]
    return types_meeting(rows, requirements)


def resolve_subnets(client, subnet_ids):
    rows = client.describe_subnets(aws_retry=True, SubnetIds=subnet_ids)["Subnets"]
    return zone_subnets_from(rows, subnet_ids)


def spot_price_history(client, instance_types, product_descriptions, zones, start, end):
    params = dict(
        InstanceTypes=instance_types,
        ProductDescriptions=product_descriptions,
        StartTime=start,
        EndTime=end,
    )
    if zones:
        params["Filters"] = [{"Name": "availability-zone", "Values": sorted(zones)}]
    return _all_pages(client, "describe_spot_price_history", **params)["SpotPriceHistory"]


def spot_price_info(client, params, now):
    """Everything the module returns, from its parameters and the time the window ends."""
    start, end = window(now, params["lookback_hours"])
    if params["requirements"]:
        instance_types = resolve_instance_types(client, params["requirements"])
        if not instance_types:
            raise SpotSelectionError("no instance type meets requirements %r" % (params["requirements"],))
    else:
        instance_types = sorted(set(params["instance_types"]))
        if not instance_types:
            raise SpotSelectionError("instance_types is empty")
    zone_subnets = resolve_subnets(client, params["subnets"]) if params["subnets"] else None
    zones = list(zone_subnets) if zone_subnets else params["availability_zones"]
    history = spot_price_history(client, instance_types, params["product_descriptions"], zones, start, end)
    stats = price_statistics(history, start, end)
    result = select(
        stats,
        strategy=params["strategy"],
        max_price=params["max_price"],
        zone_subnets=zone_subnets,
        on_demand_prices=params["on_demand_prices"],
    )
    result.update(
        prices=stats,
        instance_types=instance_types,
        window=dict(start=start.strftime("%Y-%m-%dT%H:%M:%SZ"), end=end.strftime("%Y-%m-%dT%H:%M:%SZ")),
    )
    return result


def main():
    module = AnsibleAWSModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
        required_one_of=REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    try:
        result = spot_price_info(client, module.params, datetime.datetime.now(datetime.timezone.utc))
    except SpotSelectionError as e:
        module.fail_json(msg=str(e))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to read EC2 spot price history")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
