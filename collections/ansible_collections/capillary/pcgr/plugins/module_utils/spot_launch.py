# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

"""Launching spot instances pool by pool, as plain functions around an EC2 client.

Why RunInstances with spot market options rather than CreateFleet: the pools come ranked from
`ec2_spot_price_info`, and that ranking is the allocation policy; trying them in order is
deterministic and auditable (every attempt is returned), every launch setting (IMDSv2, encrypted
volumes, shutdown behaviour, tags) travels in the one request and can be verified on the instance,
and there is no fleet object left to clean up. CreateFleet's `price-capacity-optimized` would
weigh capacity too, which AWS can see and we cannot; `attempts` in the result shows when a pool
had no capacity so a run can be audited.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Errors that mean "this pool cannot take the request now": try the next one.
CAPACITY_ERRORS = frozenset(
    (
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InstanceLimitExceeded",
        "Unsupported",
        "UnfulfillableCapacity",
    )
)


class LaunchError(ValueError):
    """Input the launch cannot work with, named with the reason."""


def block_device_mappings(volumes):
    """RunInstances BlockDeviceMappings from the module's `volumes` option."""
    mappings = []
    for i, volume in enumerate(volumes):
        if not volume.get("device_name"):
            raise LaunchError("volumes[%d].device_name is required" % i)
        if not isinstance(volume.get("size"), int) or volume["size"] < 1:
            raise LaunchError(
                "volumes[%d].size must be a positive number of GiB, got %r" % (i, volume.get("size"))
            )
        ebs = {
            "VolumeSize": volume["size"],
            "VolumeType": volume.get("volume_type") or "gp3",
            "Encrypted": bool(volume.get("encrypted", True)),
            "DeleteOnTermination": bool(volume.get("delete_on_termination", True)),
        }
        if volume.get("kms_key_id"):
            ebs["KmsKeyId"] = volume["kms_key_id"]
        mappings.append({"DeviceName": volume["device_name"], "Ebs": ebs})
    return mappings


def tag_specifications(tags, market):
    resource_types = ["instance", "volume"] + (["spot-instances-request"] if market == "spot" else [])
    tag_list = [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]
    return [{"ResourceType": r, "Tags": tag_list} for r in resource_types] if tag_list else []


def run_request(params, pool, market, count):
    """The RunInstances parameters for `count` instances in one pool."""
    request = {
        "ImageId": params["image_id"],
        "InstanceType": pool["instance_type"],
        "MinCount": 1,
        "MaxCount": count,
        "MetadataOptions": {
            "HttpTokens": params["metadata_tokens"],
            "HttpPutResponseHopLimit": params["metadata_hop_limit"],
            "HttpEndpoint": "enabled",
        },
        "InstanceInitiatedShutdownBehavior": params["instance_initiated_shutdown_behavior"],
        "BlockDeviceMappings": block_device_mappings(params["volumes"] or []),
        "TagSpecifications": tag_specifications(params["tags"] or {}, market),
    }
    if pool.get("subnet_id"):
        request["SubnetId"] = pool["subnet_id"]
    elif pool.get("availability_zone"):
        request["Placement"] = {"AvailabilityZone": pool["availability_zone"]}
    if params.get("security_group_ids"):
        request["SecurityGroupIds"] = params["security_group_ids"]
    if params.get("iam_instance_profile"):
        request["IamInstanceProfile"] = {"Name": params["iam_instance_profile"]}
    if params.get("user_data"):
        # Plain text: botocore base64-encodes RunInstances' UserData itself.
        request["UserData"] = params["user_data"]
    if market == "spot":
        spot = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
        if params.get("max_price") is not None:
            spot["MaxPrice"] = "%.6f" % params["max_price"]
        request["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
    return request


def launch(run_instances, params, error_code):
    """Launch `params["count"]` instances, spot pool by pool, then on-demand if allowed.

    `run_instances(**request)` is the EC2 call; `error_code(exc)` returns the AWS error code of an
    exception it raised, or None when the exception is not an AWS error (then it propagates).
    Returns the launched instances and every attempt, failed ones with their error code.
    """
    wanted = params["count"]
    pools = params["pools"] or []
    if wanted < 0:
        raise LaunchError("count must be 0 or more, got %d" % wanted)
    if wanted and not pools:
        raise LaunchError("pools is empty: nothing to launch in")
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not pool.get("instance_type"):
            raise LaunchError("pools[%d] has no instance_type: %r" % (i, pool))
    plan = [("spot", pool) for pool in pools] if params["market"] == "spot" else []
    if params["market"] == "on-demand" or params["on_demand_fallback"]:
        plan += [("on-demand", pool) for pool in pools]

    instances, attempts = [], []
    for market, pool in plan:
        remaining = wanted - len(instances)
        if remaining <= 0:
            break
        attempt = {
            "market": market,
            "instance_type": pool["instance_type"],
            "availability_zone": pool.get("availability_zone"),
            "subnet_id": pool.get("subnet_id"),
            "requested": remaining,
            "launched": 0,
        }
        try:
            response = run_instances(**run_request(params, pool, market, remaining))
        except Exception as e:
            code = error_code(e)
            if code not in CAPACITY_ERRORS:
                raise
            attempt["error_code"] = code
            attempts.append(attempt)
            continue
        for instance in response.get("Instances", []):
            instances.append(
                {
                    "instance_id": instance["InstanceId"],
                    "instance_type": instance["InstanceType"],
                    "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
                    "subnet_id": instance.get("SubnetId"),
                    "market": market,
                    "state": instance.get("State", {}).get("Name"),
                }
            )
            attempt["launched"] += 1
        attempts.append(attempt)
    return {"instances": instances, "attempts": attempts}
