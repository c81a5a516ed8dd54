#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Capillary contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sqs_queue_info
version_added: 0.1.0
short_description: Read an SQS queue's depth
description:
  - Returns the approximate number of visible, in-flight and delayed messages of an SQS queue,
    the numbers a scaler needs (C(community.aws.sqs_queue) creates queues but does not read them).
author:
  - Capillary contributors
options:
  name:
    description: Queue name.
    type: str
    required: true
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
"""

try:  # noqa: SIM105 - amazon.aws's import guard; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ARGUMENT_SPEC = dict(name=dict(type="str", required=True))
_COUNTS = dict(
    visible="ApproximateNumberOfMessages",
    in_flight="ApproximateNumberOfMessagesNotVisible",
    delayed="ApproximateNumberOfMessagesDelayed",
)


def queue_depth(client, name):
    try:
        url = client.get_queue_url(aws_retry=True, QueueName=name)["QueueUrl"]
    except is_boto3_error_code(["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"]):
        return dict(exists=False, **{key: 0 for key in _COUNTS})
    attributes = client.get_queue_attributes(
        aws_retry=True, QueueUrl=url, AttributeNames=list(_COUNTS.values())
    )["Attributes"]
    return dict(
        exists=True, queue_url=url, **{key: int(attributes.get(attr, 0)) for key, attr in _COUNTS.items()}
    )


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())
    try:
        result = queue_depth(client, module.params["name"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to read queue %s" % module.params["name"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
