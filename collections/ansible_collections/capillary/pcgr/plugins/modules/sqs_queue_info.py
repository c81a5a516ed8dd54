#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sqs_queue_info
version_added: 0.1.0
short_description: Read an SQS queue's depth
description:
  - Returns the approximate number of visible, in-flight and delayed messages of an SQS queue,
    the numbers a scaler needs (C(community.aws.sqs_queue) creates queues but does not read them),
    and its redrive policy (maximum receive count, dead-letter queue) when it has one.
  - Given O(samples_per_worker), also how many workers those messages need, the visible and
    in-flight messages divided by O(samples_per_worker), rounded up, at most O(max_workers).
  - The attributes are read, and the count worked out, by C(capillary.contract.queue), the same
    code C(capillary status) and the EDA source use; the C(capillary) Python package must be
    installed where the module runs (the controller).
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  name:
    description: Queue name.
    type: str
    required: true
  samples_per_worker:
    description:
      - Messages one worker is expected to take; with it the module returns RV(workers_needed).
    type: int
  max_workers:
    description:
      - The most workers RV(workers_needed) may say; unset, it is not capped. Only with
        O(samples_per_worker).
    type: int
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Read-only; supports check mode.
"""

EXAMPLES = r"""
- name: Read the depth of the work queue
  capillary.pcgr.sqs_queue_info:
    name: capillary-demo-work
  register: work_queue

- name: Show the messages waiting or being worked on
  ansible.builtin.debug:
    msg: "{{ work_queue.visible + work_queue.in_flight }}"

- name: Work out how many workers the work queue needs, two samples each, at most 4
  capillary.pcgr.sqs_queue_info:
    name: capillary-demo-work
    samples_per_worker: 2
    max_workers: 4
  register: work_queue_workers
"""

RETURN = r"""
exists:
  description: Whether the queue exists; the counts are V(0) when it does not.
  returned: always
  type: bool
  sample: true
queue_url:
  description: Queue URL.
  returned: when the queue exists
  type: str
  sample: https://sqs.eu-west-1.amazonaws.com/123456789012/capillary-demo-work
visible:
  description: Approximate number of messages available for retrieval.
  returned: always
  type: int
  sample: 3
in_flight:
  description: Approximate number of messages received and not yet deleted.
  returned: always
  type: int
  sample: 1
delayed:
  description: Approximate number of delayed messages.
  returned: always
  type: int
  sample: 0
max_receive_count:
  description: Receives before a message goes to the dead-letter queue (the redrive policy's).
  returned: when the queue exists and has a redrive policy
  type: int
  sample: 3
dead_letter_arn:
  description: ARN of the dead-letter queue (the redrive policy's).
  returned: when the queue exists and has a redrive policy
  type: str
  sample: arn:aws:sqs:eu-west-1:123456789012:capillary-demo-work-dlq
workers_needed:
  description:
    - Workers the visible and in-flight messages need (their number divided by O(samples_per_worker),
      rounded up), at most O(max_workers); V(0) when the queue does not exist.
  returned: when O(samples_per_worker) is given
  type: int
  sample: 2
"""

try:  # noqa: SIM105 - amazon.aws's import guard; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    samples_per_worker=dict(type="int"),
    max_workers=dict(type="int"),
)
# max_workers caps workers_needed, which only samples_per_worker asks for.
REQUIRED_BY = dict(max_workers=["samples_per_worker"])


def queue_contract(module):
    """`capillary.contract.queue`: the one home of what a queue's attributes mean (the controller's)."""
    try:
        from capillary.contract import queue
    except ImportError:
        module.fail_json(
            msg=missing_required_lib("capillary-pcgr", reason="to read the queue's attributes"),
            exception=traceback.format_exc(),
        )
    return queue


def queue_depth(client, contract, name):
    """(URL, `contract.QueueDepth`) of the queue `name`; (None, None) when there is no such queue."""
    try:
        url = client.get_queue_url(aws_retry=True, QueueName=name)["QueueUrl"]
    except is_boto3_error_code(["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"]):
        return None, None
    attributes = client.get_queue_attributes(
        aws_retry=True, QueueUrl=url, AttributeNames=list(contract.ATTRIBUTE_NAMES)
    )["Attributes"]
    return url, contract.QueueDepth.from_attributes(attributes)


def describe(contract, url, depth, samples_per_worker=None, max_workers=None):
    """What the module returns: the counts, the redrive policy if any, and the workers needed if asked."""
    if depth is None:
        result = dict(exists=False, visible=0, in_flight=0, delayed=0)
    else:
        result = dict(
            exists=True,
            queue_url=url,
            visible=depth.visible,
            in_flight=depth.in_flight,
            delayed=depth.delayed,
        )
        if depth.dead_letter_arn is not None:
            result.update(max_receive_count=depth.max_receive_count, dead_letter_arn=depth.dead_letter_arn)
    if samples_per_worker is not None:
        result["workers_needed"] = contract.workers_needed(
            result["visible"], result["in_flight"], samples_per_worker, max_workers
        )
    return result


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, required_by=REQUIRED_BY, supports_check_mode=True)
    params = module.params
    contract = queue_contract(module)
    client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())
    try:
        url, depth = queue_depth(client, contract, params["name"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to read queue %s" % params["name"])
    except contract.QueueAttributeError as e:
        module.fail_json(msg="queue %s: %s" % (params["name"], e))
    try:
        result = describe(contract, url, depth, params["samples_per_worker"], params["max_workers"])
    except ValueError as e:
        module.fail_json(msg="queue %s: %s" % (params["name"], e))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
