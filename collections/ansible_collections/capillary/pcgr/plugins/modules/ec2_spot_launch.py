#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_spot_launch
version_added: 0.1.0
short_description: Launch EC2 spot instances across ranked pools, with on-demand fallback
description:
  - Launches O(count) instances with C(RunInstances) and spot market options, trying the given
    pools (instance type and subnet or zone) in order until enough are running; a pool that
    answers with a capacity or price error is skipped.
  - With O(on_demand_fallback), the same pools are then tried as on-demand.
  - Every instance gets the same hardened settings in the one request, so they can be verified
    on the instance afterwards - IMDSv2 tokens with a hop limit, encrypted volumes, the
    shutdown behaviour, the instance profile, the tags (also on its volumes and spot request).
  - Not idempotent by itself, like M(amazon.aws.ec2_instance) with O(amazon.aws.ec2_instance#module:count);
    count the running instances first (by tags and state) and pass only the difference.
  - O(pools) takes the RV(capillary.pcgr.ec2_spot_price_info#module:candidates) of
    M(capillary.pcgr.ec2_spot_price_info) as they are.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  count:
    description: How many instances to launch. V(0) launches nothing and reports no change.
    type: int
    required: true
  pools:
    description:
      - Where to launch, best first. Each item needs C(instance_type) and may have C(subnet_id)
        (preferred) or C(availability_zone); other keys are ignored.
    type: list
    elements: dict
    required: true
  image_id:
    description: The image (AMI) id.
    type: str
    required: true
  iam_instance_profile:
    description: Name of the instance profile the instances run with.
    type: str
  security_group_ids:
    description: Security group ids; the subnet's VPC default group when omitted.
    type: list
    elements: str
  user_data:
    description:
      - User data, plain text (botocore base64-encodes it). Anyone who can describe the instance
        can read it, so it must hold nothing secret.
    type: str
  volumes:
    description: EBS volumes, the image's root device included to size and encrypt it.
    type: list
    elements: dict
    default: []
    suboptions:
      device_name:
        description: Device name, for example the image's root device name.
        type: str
        required: true
      size:
        description: Size in GiB.
        type: int
        required: true
      volume_type:
        description: EBS volume type.
        type: str
        default: gp3
      encrypted:
        description: Encrypt the volume.
        type: bool
        default: true
      kms_key_id:
        description: KMS key for the encryption; the account's default EBS key when omitted.
        type: str
      delete_on_termination:
        description: Delete the volume with the instance.
        type: bool
        default: true
  metadata_tokens:
    description: Instance metadata tokens; V(required) is IMDSv2 only.
    type: str
    choices: [required, optional]
    default: required
  metadata_hop_limit:
    description: Hop limit of metadata responses; V(1) keeps them from containers behind a bridge.
    type: int
    default: 1
  instance_initiated_shutdown_behavior:
    description: What a shutdown from inside the instance does.
    type: str
    choices: [terminate, stop]
    default: terminate
  market:
    description: V(spot) tries the pools as one-time spot instances; V(on-demand) launches on-demand only.
    type: str
    choices: [spot, on-demand]
    default: spot
  max_price:
    description: Spot price cap in USD per hour; the on-demand price when omitted.
    type: float
  on_demand_fallback:
    description: After every spot pool failed, try the pools again as on-demand.
    type: bool
    default: false
  tags:
    description: Tags for the instances, their volumes and their spot requests.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - In check mode nothing is launched; the result reports the change that would be made.
"""

EXAMPLES = r"""
- name: Rank the spot pools for workers
  capillary.pcgr.ec2_spot_price_info:
    instance_types: [m5.xlarge, m6i.xlarge, m5a.xlarge]
    subnets: [subnet-0123456789abcdef0, subnet-0fedcba9876543210]
    max_price: 0.12
  register: spot

- name: Launch two workers in the best pools, on-demand if spot has no capacity
  capillary.pcgr.ec2_spot_launch:
    count: 2
    pools: "{{ spot.candidates }}"
    image_id: ami-0123456789abcdef0
    iam_instance_profile: capillary-demo-worker
    max_price: 0.12
    on_demand_fallback: true
    volumes:
      - device_name: /dev/xvda
        size: 30
      - device_name: /dev/xvdb
        size: 80
    tags:
      Name: capillary-demo-worker
      capillary:deployment: demo
      capillary:role: worker
  register: launched
"""

RETURN = r"""
instances:
  description: The instances launched, in launch order.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: Instance id.
      type: str
      sample: i-0123456789abcdef0
    instance_type:
      description: Instance type.
      type: str
      sample: m5.xlarge
    availability_zone:
      description: Availability zone.
      type: str
      sample: eu-west-1a
    subnet_id:
      description: Subnet id.
      type: str
      sample: subnet-0123456789abcdef0
    market:
      description: V(spot) or V(on-demand).
      type: str
      sample: spot
    state:
      description: Instance state at launch.
      type: str
      sample: pending
attempts:
  description: Every RunInstances call in order, with C(error_code) where a pool could not take it.
  returned: always
  type: list
  elements: dict
  sample:
    - {market: spot, instance_type: m5.xlarge, subnet_id: subnet-0123456789abcdef0, requested: 2, launched: 0,
       error_code: InsufficientInstanceCapacity}
    - {market: spot, instance_type: m6i.xlarge, subnet_id: subnet-0fedcba9876543210, requested: 2,
       launched: 2}
instance_ids:
  description: The ids of RV(instances).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
msg:
  description: What was launched.
  returned: always
  type: str
  sample: launched 2 of 2 (2 spot, 0 on-demand)
"""

try:  # noqa: SIM105 - amazon.aws's import guard; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.capillary.pcgr.plugins.module_utils.spot_launch import LaunchError, launch

ARGUMENT_SPEC = dict(
    count=dict(type="int", required=True),
    pools=dict(type="list", elements="dict", required=True),
    image_id=dict(type="str", required=True),
    iam_instance_profile=dict(type="str"),
    security_group_ids=dict(type="list", elements="str"),
    user_data=dict(type="str"),
    volumes=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            device_name=dict(type="str", required=True),
            size=dict(type="int", required=True),
            volume_type=dict(type="str", default="gp3"),
            encrypted=dict(type="bool", default=True),
            kms_key_id=dict(type="str"),
            delete_on_termination=dict(type="bool", default=True),
        ),
    ),
    metadata_tokens=dict(type="str", choices=["required", "optional"], default="required"),
    metadata_hop_limit=dict(type="int", default=1),
    instance_initiated_shutdown_behavior=dict(type="str", choices=["terminate", "stop"], default="terminate"),
    market=dict(type="str", choices=["spot", "on-demand"], default="spot"),
    max_price=dict(type="float"),
    on_demand_fallback=dict(type="bool", default=False),
    tags=dict(type="dict", default={}),
)


def _error_code(exc):
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    count = module.params["count"]
    if count < 0:
        module.fail_json(msg="count must be 0 or more, got %d" % count)
    if count == 0:
        module.exit_json(changed=False, instances=[], instance_ids=[], attempts=[], msg="nothing to launch")
    if module.check_mode:
        module.exit_json(
            changed=True,
            instances=[],
            instance_ids=[],
            attempts=[],
            msg="would launch %d (check mode)" % count,
        )

    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())

    def run_instances(**request):
        # Retried on throttling only; capacity errors go back to launch() to try the next pool.
        return client.run_instances(aws_retry=True, **request)

    try:
        result = launch(run_instances, module.params, _error_code)
    except LaunchError as e:
        module.fail_json(msg=str(e))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to launch instances")

    instances = result["instances"]
    spot = sum(1 for i in instances if i["market"] == "spot")
    msg = "launched %d of %d (%d spot, %d on-demand)" % (len(instances), count, spot, len(instances) - spot)
    ids = [i["instance_id"] for i in instances]
    if not instances:
        module.fail_json(msg="no pool could launch an instance: " + msg, attempts=result["attempts"])
    if len(instances) < count:
        module.warn(msg)
    module.exit_json(
        changed=True, instances=instances, instance_ids=ids, attempts=result["attempts"], msg=msg
    )


if __name__ == "__main__":
    main()
