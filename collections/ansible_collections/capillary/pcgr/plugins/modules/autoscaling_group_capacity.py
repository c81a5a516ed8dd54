#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: autoscaling_group_capacity
version_added: 0.2.0
short_description: Set an EC2 Auto Scaling group's desired capacity so that concurrent runs agree
description:
  - Sets the desired capacity of an Auto Scaling group to what the work needs, never more than
    its MaxSize and, unless O(scale_in), never less than it already is. The capacity is set, never
    added to, so any number of runs at once end on the same group size.
  - After each write the module reads the group again (and, with O(queue), the queue's depth) and
    writes again until what it reads already satisfies it, so a run that read an older state cannot
    leave the group below what the freshest reading needs.
  - Creates the group when it is missing (empty - MinSize 0, desired capacity 0 - then sized), from a
    launch template and a mixed instances policy (instance types best first, spot with an on-demand
    part, an allocation strategy), with new instances protected from scale-in. A run that must
    create the group or scale it out and was not given O(launch_template) changes nothing and
    returns RV(needs_configuration), so the cheap case (enough capacity already) needs no launch
    settings at all.
  - With O(fence), a take-down wins over every run that started before it. O(state=absent) writes a
    new token into the O(fence.parameter) SSM parameter, then closes every group matching
    O(match_tags) (MinSize, MaxSize and desired capacity 0) and terminates their instances, pass
    after pass until nothing is open or alive. O(state=present) stops (RV(superseded)) when the
    token is no longer O(fence.token), checked before every write that could launch; a write that
    raises MaxSize is checked again afterwards and undone.
  - The logic is in C(module_utils/group_capacity.py), which explains the protocol.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  name:
    description: The group's name (O(state=present)).
    type: str
  state:
    description:
      - V(present) sizes the group O(name); V(absent) closes every group matching O(match_tags) and
        terminates their instances (the groups and their launch templates stay, closed).
    type: str
    choices: [present, absent]
    default: present
  desired:
    description:
      - What the work needs now (O(state=present)); the module caps it at O(max_size). Omitted, it is
        read from O(queue). With O(queue), later attempts read it again from the queue.
    type: int
  max_size:
    description:
      - The cap, written as the group's MaxSize. Omitted, the group's MaxSize stays (a scale-in).
    type: int
  scale_in:
    description:
      - Set the desired capacity to exactly O(desired) (capped), lower if need be, instead of never
        lowering it. The run never raises MaxSize and never creates the group.
    type: bool
    default: false
  shed_surplus:
    description:
      - With O(scale_in), terminate the live instances beyond the new desired capacity, newest first,
        without replacement (protected instances are not terminated by a lower desired capacity).
    type: bool
    default: false
  queue:
    description:
      - The SQS queue whose depth says what the work needs - ceil((visible + in flight) /
        O(queue.samples_per_worker)), by C(capillary.contract.queue) (the C(capillary) package must be
        installed where the module runs). Read first when O(desired) is omitted, and on every later attempt.
    type: dict
    suboptions:
      name:
        description: Queue name.
        type: str
        required: true
      samples_per_worker:
        description: Messages one instance is expected to take.
        type: int
        default: 1
  fence:
    description:
      - The take-down token, in an SSM parameter. O(state=present) - the token read when the run
        started (empty when there was none); O(state=absent) - the new token written.
    type: dict
    suboptions:
      parameter:
        description: The SSM parameter name.
        type: str
        required: true
      token:
        description: The token.
        type: str
        default: ""
      tag:
        description:
          - The group tag a run writes the token it read into before it opens or grows a group; a
            take-down leaves a group carrying its own token alone (a run that started after it
            opened it) and closes the others.
        type: str
        default: capillary:fence
  match_tags:
    description: O(state=absent), the tags (all of them) of the groups to close.
    type: dict
  launch_template:
    description: The launch template instances are launched from; needed to create or scale out.
    type: dict
    suboptions:
      name:
        description: Launch template name.
        type: str
        required: true
      version:
        description: Launch template version.
        type: str
        default: $Default
  instance_types:
    description: Instance types the group may launch, best first (the mixed instances policy's overrides).
    type: list
    elements: str
    default: []
  subnets:
    description: Subnet ids the group launches into; needed with O(launch_template).
    type: list
    elements: str
    default: []
  on_demand_base_capacity:
    description: Instances that are on-demand whatever the percentage.
    type: int
    default: 0
  on_demand_percentage:
    description:
      - Percent of the instances above the base that are on-demand; V(0) is spot only, V(100) on-demand only.
    type: int
    default: 0
  spot_allocation_strategy:
    description: How AWS chooses spot pools among O(instance_types) and O(subnets).
    type: str
    choices: [price-capacity-optimized, capacity-optimized, capacity-optimized-prioritized, lowest-price]
    default: price-capacity-optimized
  spot_max_price:
    description: The most to pay for a spot instance-hour in USD; the on-demand price when omitted.
    type: float
  protect_from_scale_in:
    description: Protect new instances from scale-in, so a lower desired capacity never kills a busy one.
    type: bool
    default: true
  tags:
    description: Tags of the group itself (not propagated to instances; the launch template tags those).
    type: dict
    default: {}
  launch_tags:
    description: Tags written on the group before a scale-out, propagated to the instances it launches.
    type: dict
    default: {}
  attempts:
    description: Writes at most, each followed by a fresh read, before the run reports it did not converge.
    type: int
    default: 6
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode (nothing is written; C(changed) says whether something would be).
  - Instance scale-in protection does not stop a take-down, a spot interruption or an instance
    leaving its group by TerminateInstanceInAutoScalingGroup.
"""

EXAMPLES = r"""
- name: Size the worker group from the queue, at most 4, with no launch settings (cheap when enough run)
  capillary.pcgr.autoscaling_group_capacity:
    name: capillary-demo-workers-2.3.2
    desired: 3
    max_size: 4
    queue:
      name: capillary-demo-work
    fence:
      parameter: /capillary/demo/workers/down
      token: "{{ token_seen_at_start }}"
  register: group

- name: Create the group or scale it out, spot first with the types ranked by price
  capillary.pcgr.autoscaling_group_capacity:
    name: capillary-demo-workers-2.3.2
    desired: 3
    max_size: 4
    fence:
      parameter: /capillary/demo/workers/down
      token: "{{ token_seen_at_start }}"
    launch_template:
      name: capillary-demo-workers-2.3.2
    instance_types: [m6i.xlarge, m5.xlarge]
    subnets: [subnet-0123456789abcdef0, subnet-0fedcba9876543210]
    tags:
      capillary:deployment: demo
    launch_tags:
      capillary:event: inputs/b-0a1b2c-somatic.tar.gz
  when: group.needs_configuration

- name: Take every worker group of the deployment down
  capillary.pcgr.autoscaling_group_capacity:
    state: absent
    match_tags:
      capillary:deployment: demo
    fence:
      parameter: /capillary/demo/workers/down
      token: down-20250101T000000Z-1234
"""

RETURN = r"""
exists:
  description: Whether the group exists (O(state=present)).
  returned: when O(state=present)
  type: bool
  sample: true
wanted:
  description: What the work needed at the run's last reading (O(desired), or the queue's), before the cap.
  returned: when O(state=present)
  type: int
  sample: 100
desired_capacity:
  description: The group's desired capacity when the run ended.
  returned: when O(state=present)
  type: int
  sample: 4
max_size:
  description: The group's MaxSize when the run ended.
  returned: when O(state=present)
  type: int
  sample: 4
instances:
  description: Ids of the group's instances that are launching or in service when the run ended.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
created:
  description: Whether this run created the group.
  returned: when O(state=present)
  type: bool
  sample: false
configured:
  description: Whether this run wrote the group's launch settings.
  returned: when O(state=present)
  type: bool
  sample: false
needs_configuration:
  description: The group must be created or scaled out and O(launch_template) was not given; nothing was done.
  returned: when O(state=present)
  type: bool
  sample: false
superseded:
  description: A take-down ran after this run started (the fence token changed); the run stopped.
  returned: when O(state=present)
  type: bool
  sample: false
converged:
  description: Whether the last read satisfied the run (false after O(attempts) writes).
  returned: when O(state=present)
  type: bool
  sample: true
steps:
  description: Every write in order (creation, MaxSize, each desired capacity set and whether AWS took it).
  returned: when O(state=present)
  type: list
  elements: dict
  sample: [{attempt: 1, was: 0, wanted: 4, set: 4, accepted: true}]
terminated:
  description: Instances this run terminated (O(state=absent), or O(shed_surplus)).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
groups:
  description: The groups closed (O(state=absent)).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [capillary-demo-workers-2.3.2]
reopened:
  description: Groups left open, opened by a run that started after this take-down (O(state=absent)).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: []
msg:
  description: What the run did.
  returned: always
  type: str
  sample: desired capacity 4
"""

try:  # noqa: SIM105 - amazon.aws's import guard; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.capillary.pcgr.plugins.module_utils.group_capacity import (
    CapacityError,
    Groups,
    close_all,
    ensure_capacity,
    shed_surplus,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    desired=dict(type="int"),
    max_size=dict(type="int"),
    scale_in=dict(type="bool", default=False),
    shed_surplus=dict(type="bool", default=False),
    queue=dict(
        type="dict",
        options=dict(name=dict(type="str", required=True), samples_per_worker=dict(type="int", default=1)),
    ),
    fence=dict(
        type="dict",
        options=dict(
            parameter=dict(type="str", required=True),
            token=dict(type="str", default="", no_log=False),  # a take-down marker, not a secret
            tag=dict(type="str", default="capillary:fence"),
        ),
    ),
    match_tags=dict(type="dict"),
    launch_template=dict(
        type="dict",
        options=dict(name=dict(type="str", required=True), version=dict(type="str", default="$Default")),
    ),
    instance_types=dict(type="list", elements="str", default=[]),
    subnets=dict(type="list", elements="str", default=[]),
    on_demand_base_capacity=dict(type="int", default=0),
    on_demand_percentage=dict(type="int", default=0),
    spot_allocation_strategy=dict(
        type="str",
        choices=[
            "price-capacity-optimized",
            "capacity-optimized",
            "capacity-optimized-prioritized",
            "lowest-price",
        ],
        default="price-capacity-optimized",
    ),
    spot_max_price=dict(type="float"),
    protect_from_scale_in=dict(type="bool", default=True),
    tags=dict(type="dict", default={}),
    launch_tags=dict(type="dict", default={}),
    attempts=dict(type="int", default=6),
)
REQUIRED_IF = [
    ("state", "present", ["name"]),
    ("state", "present", ["desired", "queue"], True),
    ("state", "absent", ["match_tags", "fence"]),
]


def launch_configuration(params):
    """CreateAutoScalingGroup/UpdateAutoScalingGroup launch settings from the module's options."""
    template = params["launch_template"]
    if template is None:
        return None
    if not params["subnets"]:
        raise CapacityError("subnets is empty: a group needs at least one subnet to launch into")
    if not 0 <= params["on_demand_percentage"] <= 100:
        raise CapacityError("on_demand_percentage must be 0 to 100, got %d" % params["on_demand_percentage"])
    distribution = {
        "OnDemandBaseCapacity": params["on_demand_base_capacity"],
        "OnDemandPercentageAboveBaseCapacity": params["on_demand_percentage"],
        "OnDemandAllocationStrategy": "prioritized",
        "SpotAllocationStrategy": params["spot_allocation_strategy"],
    }
    if params["spot_max_price"] is not None:
        distribution["SpotMaxPrice"] = "%.6f" % params["spot_max_price"]
    launch = {
        "LaunchTemplateSpecification": {
            "LaunchTemplateName": template["name"],
            "Version": template["version"],
        }
    }
    if params["instance_types"]:
        launch["Overrides"] = [{"InstanceType": t} for t in params["instance_types"]]
    return {
        "MixedInstancesPolicy": {"LaunchTemplate": launch, "InstancesDistribution": distribution},
        "VPCZoneIdentifier": ",".join(params["subnets"]),
        "NewInstancesProtectedFromScaleIn": params["protect_from_scale_in"],
        # Capacity rebalancing launches a replacement before the old instance goes: over the cap.
        "CapacityRebalance": False,
        "Tags": [
            {"Key": k, "Value": str(v), "PropagateAtLaunch": False} for k, v in sorted(params["tags"].items())
        ],
    }


def queue_reader(module, params):
    """A function returning the workers the queue needs now (None without O(queue))."""
    queue = params["queue"]
    if queue is None:
        return None
    try:
        from capillary.contract.queue import ATTRIBUTE_NAMES, QueueDepth
    except ImportError:
        module.fail_json(
            msg=missing_required_lib("capillary-pcgr", reason="to read the queue's depth"),
            exception=traceback.format_exc(),
        )
    sqs = []  # made on the first reading (with O(desired) given, a run that converges at once never reads)

    def read():
        if not sqs:
            client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())
            sqs.append((client, client.get_queue_url(aws_retry=True, QueueName=queue["name"])["QueueUrl"]))
        client, url = sqs[0]
        attributes = client.get_queue_attributes(
            aws_retry=True, QueueUrl=url, AttributeNames=list(ATTRIBUTE_NAMES)
        )
        return QueueDepth.from_attributes(attributes["Attributes"]).workers_needed(
            queue["samples_per_worker"]
        )

    return read


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    params = module.params
    retry = AWSRetry.jittered_backoff(catch_extra_error_codes=["ResourceContention"])
    groups = Groups(lambda service: module.client(service, retry_decorator=retry), retrying=True)
    try:
        if params["state"] == "absent":
            fence = params["fence"]
            if not fence["token"]:
                module.fail_json(msg="fence.token is empty: a take-down writes a new token")
            result = close_all(
                groups,
                params["match_tags"],
                fence["parameter"],
                fence["token"],
                check_mode=module.check_mode,
                fence_tag=fence["tag"],
            )
            result["msg"] = "closed %d group(s), terminated %d instance(s)" % (
                len(result["groups"]),
                len(result["terminated"]),
            )
            module.exit_json(**result)
        fence = (params["fence"]["parameter"], params["fence"]["token"]) if params["fence"] else None
        fresh_wanted = queue_reader(module, params)
        wanted = params["desired"] if params["desired"] is not None else fresh_wanted()
        result = ensure_capacity(
            groups,
            params["name"],
            wanted,
            max_size=params["max_size"],
            fence=fence,
            configuration=launch_configuration(params),
            launch_tags=params["launch_tags"],
            fresh_wanted=fresh_wanted,
            scale_in=params["scale_in"],
            attempts=params["attempts"],
            check_mode=module.check_mode,
            fence_tag=params["fence"]["tag"] if params["fence"] else None,
        )
        result["terminated"] = []
        if params["scale_in"] and params["shed_surplus"] and not module.check_mode:
            result["terminated"] = shed_surplus(groups, groups.describe(params["name"]))
            result["changed"] = result["changed"] or bool(result["terminated"])
    except CapacityError as e:
        module.fail_json(msg="%s: %s" % (params["name"] or "autoscaling_group_capacity", e))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to size the Auto Scaling group %s" % params["name"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
