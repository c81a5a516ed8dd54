#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: s3_bucket_notifications
version_added: 0.1.0
short_description: Set a bucket's whole event notification configuration
description:
  - Declares every SQS, Lambda and SNS notification of an S3 bucket in one task and replaces
    the bucket's notification configuration when it differs (C(PutBucketNotificationConfiguration)).
  - Unlike M(community.aws.s3_bucket_notification), which manages one Lambda or queue
    configuration per task, the configuration is exclusive (nothing else survives), key filters
    are only sent when set, and filter rule names are written in lowercase (V(prefix),
    V(suffix)), which AWS documents and every S3-compatible endpoint understands.
  - Comparison ignores order and the case of filter rule names, so a re-run reports no change.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  bucket:
    description: The bucket's name.
    type: str
    required: true
  notifications:
    description:
      - The notifications. An empty list removes every notification of the bucket.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: A unique id for this configuration.
        type: str
        required: true
      queue_arn:
        description: An SQS queue's ARN. Exactly one of O(notifications[].queue_arn),
          O(notifications[].lambda_function_arn) and O(notifications[].topic_arn) is required.
        type: str
      lambda_function_arn:
        description: A Lambda function's ARN (the function must allow C(s3.amazonaws.com) to invoke it).
        type: str
      topic_arn:
        description: An SNS topic's ARN.
        type: str
      events:
        description: The events, for example V(s3:ObjectCreated:*).
        type: list
        elements: str
        default: ["s3:ObjectCreated:*"]
      prefix:
        description: Only keys starting with this.
        type: str
        default: ""
      suffix:
        description: Only keys ending with this.
        type: str
        default: ""
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Send new inputs and outputs to the intake function
  capillary.pcgr.s3_bucket_notifications:
    bucket: capillary-demo-samples
    notifications:
      - id: capillary-inputs
        lambda_function_arn: arn:aws:lambda:eu-west-1:123456789012:function:capillary-demo-intake
        prefix: inputs/
      - id: capillary-outputs
        lambda_function_arn: arn:aws:lambda:eu-west-1:123456789012:function:capillary-demo-intake
        prefix: outputs/
"""

RETURN = r"""
notification_configuration:
  description: The configuration the bucket has after the task (as the API returns it).
  returned: always
  type: dict
  sample: {"QueueConfigurations": [{"Id": "inputs", "QueueArn": "arn:aws:sqs:eu-west-1:123456789012:q",
           "Events": ["s3:ObjectCreated:*"],
           "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inputs/"}]}}}]}
"""

try:  # noqa: SIM105 - the amazon.aws idiom; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

_TARGETS = (
    ("queue_arn", "QueueConfigurations", "QueueArn"),
    ("lambda_function_arn", "LambdaFunctionConfigurations", "LambdaFunctionArn"),
    ("topic_arn", "TopicConfigurations", "TopicArn"),
)


def desired_configuration(notifications):
    """The API document for a list of notification options."""
    config = {}
    for item in notifications:
        targets = [(option, section, field) for option, section, field in _TARGETS if item.get(option)]
        if len(targets) != 1:
            raise ValueError(
                "notification %r: give exactly one of queue_arn, lambda_function_arn, topic_arn" % item["id"]
            )
        option, section, field = targets[0]
        entry = {"Id": item["id"], field: item[option], "Events": list(item["events"])}
        rules = [{"Name": name, "Value": item[name]} for name in ("prefix", "suffix") if item.get(name)]
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        config.setdefault(section, []).append(entry)
    return config


def normalized(config):
    """An order- and case-insensitive form of a notification configuration, for comparison."""
    result = {}
    for _option, section, field in _TARGETS:
        entries = []
        for entry in config.get(section) or []:
            rules = (entry.get("Filter") or {}).get("Key", {}).get("FilterRules", [])
            entries.append(
                (
                    entry.get("Id", ""),
                    entry.get(field, ""),
                    tuple(sorted(entry.get("Events", []))),
                    tuple(sorted((r["Name"].lower(), r["Value"]) for r in rules if r.get("Value"))),
                )
            )
        if entries:
            result[section] = sorted(entries)
    return result


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            notifications=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    id=dict(type="str", required=True),
                    queue_arn=dict(type="str"),
                    lambda_function_arn=dict(type="str"),
                    topic_arn=dict(type="str"),
                    events=dict(type="list", elements="str", default=["s3:ObjectCreated:*"]),
                    prefix=dict(type="str", default=""),
                    suffix=dict(type="str", default=""),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    client = module.client("s3", retry_decorator=AWSRetry.jittered_backoff())
    bucket = module.params["bucket"]
    try:
        desired = desired_configuration(module.params["notifications"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        current = client.get_bucket_notification_configuration(Bucket=bucket, aws_retry=True)
    except is_boto3_error_code("NoSuchBucket") as e:
        if module.check_mode:
            # The bucket is created by an earlier task that check mode did not run.
            module.exit_json(changed=True, notification_configuration=desired)
        module.fail_json_aws(e, msg="Bucket %s does not exist" % bucket)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to read the notification configuration of %s" % bucket)
    current.pop("ResponseMetadata", None)
    if normalized(current) == normalized(desired):
        module.exit_json(changed=False, notification_configuration=current)
    if module.check_mode:
        module.exit_json(changed=True, notification_configuration=desired)
    try:
        client.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=desired, aws_retry=True
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to set the notification configuration of %s" % bucket)
    module.exit_json(changed=True, notification_configuration=desired)


if __name__ == "__main__":
    main()
