#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lambda_event_invoke_config
version_added: 0.2.0
short_description: Set how Lambda retries a function's asynchronous events and where failed ones go
description:
  - Manages a Lambda function's asynchronous invocation configuration
    (C(PutFunctionEventInvokeConfig)) - how often Lambda retries an event the function failed,
    how long it keeps an event waiting, and where it sends the invocation record of an event that
    failed every attempt or expired (O(on_failure)) or succeeded (O(on_success)).
  - The configuration is exclusive, as the API's is - a setting left out is removed and Lambda's
    default applies again (2 retries, 6 hours, no destination).
  - Neither C(amazon.aws) nor C(community.aws) manages this configuration. A destination keeps
    more than the dead-letter queue M(amazon.aws.lambda) sets with C(dead_letter_arn) - its record
    carries the event, the error and the number of attempts.
  - The current configuration is read first and written only when it differs; a setting Lambda
    does not report compares equal to its default, so a re-run reports no change.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  function_name:
    description:
      - The function's name or ARN. A version or alias may be appended (V(my-function:live)).
    type: str
    required: true
  state:
    description:
      - V(present) sets the configuration, V(absent) deletes it (Lambda's defaults apply again).
    type: str
    default: present
    choices: [present, absent]
  maximum_retry_attempts:
    description:
      - How many times Lambda retries an event after the function returned an error. Lambda's
        default is V(2).
    type: int
    choices: [0, 1, 2]
  maximum_event_age_in_seconds:
    description:
      - How long Lambda keeps an event waiting for a first or further attempt, 60 to 21600 seconds.
        Lambda's default is V(21600) (6 hours).
    type: int
  on_failure:
    description:
      - The ARN of the destination of an event that failed every attempt or grew too old - an SQS
        queue, an SNS topic, a Lambda function, an EventBridge event bus or an S3 bucket.
      - The function's execution role must be allowed to send there (C(sqs:SendMessage) for a
        queue); Lambda checks that when the configuration is written.
    type: str
  on_success:
    description:
      - The ARN of the destination of an event the function handled, as for O(on_failure).
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode and diff mode.
  - In check mode a function that does not exist yet (a skipped earlier task would create it) is
    reported as a change; otherwise O(state=present) fails naming the missing function.
  - Calls are retried with jittered backoff on throttling and on C(ResourceConflictException),
    which Lambda answers while the function itself is being updated.
"""

EXAMPLES = r"""
- name: Send the intake events Lambda gave up on to a queue, after one retry
  capillary.pcgr.lambda_event_invoke_config:
    function_name: capillary-demo-intake
    maximum_retry_attempts: 1
    maximum_event_age_in_seconds: 3600
    on_failure: arn:aws:sqs:eu-west-1:123456789012:capillary-demo-intake-failures

- name: Go back to Lambda's defaults
  capillary.pcgr.lambda_event_invoke_config:
    function_name: capillary-demo-intake
    state: absent
"""

RETURN = r"""
event_invoke_config:
  description:
    - The configuration after the task, as Lambda reports it (in check mode, what would be
      written); empty when the function has none.
  returned: always
  type: dict
  sample: {"function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:capillary-demo-intake",
           "last_modified": "2026-11-21T09:21:23.374000+00:00", "maximum_retry_attempts": 1,
           "maximum_event_age_in_seconds": 3600,
           "destination_config": {"on_failure": {
             "destination": "arn:aws:sqs:eu-west-1:123456789012:capillary-demo-intake-failures"}}}
  contains:
    function_arn:
      description: The function's ARN.
      type: str
    last_modified:
      description: When the configuration was last written (ISO 8601).
      type: str
    maximum_retry_attempts:
      description: Retries after an error, when set.
      type: int
    maximum_event_age_in_seconds:
      description: The longest an event waits, when set.
      type: int
    destination_config:
      description: The destinations, C(on_failure) and C(on_success), each with a C(destination) ARN.
      type: dict
"""

import datetime

try:  # noqa: SIM105 - the amazon.aws idiom; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ARGUMENT_SPEC = dict(
    function_name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    maximum_retry_attempts=dict(type="int", choices=[0, 1, 2]),
    maximum_event_age_in_seconds=dict(type="int"),
    on_failure=dict(type="str"),
    on_success=dict(type="str"),
)

# What Lambda does when a setting is not configured (its documented defaults).
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_EVENT_AGE_S = 21600
MIN_EVENT_AGE_S = 60
_DESTINATIONS = (("on_failure", "OnFailure"), ("on_success", "OnSuccess"))


def check_params(params):
    """A message naming the first unusable option, or None."""
    age = params.get("maximum_event_age_in_seconds")
    if age is not None and not MIN_EVENT_AGE_S <= age <= DEFAULT_EVENT_AGE_S:
        return "maximum_event_age_in_seconds must be between %d and %d, got %d" % (
            MIN_EVENT_AGE_S,
            DEFAULT_EVENT_AGE_S,
            age,
        )
    for option, _key in _DESTINATIONS:
        arn = params.get(option)
        if arn and not arn.startswith("arn:"):
            return "%s must be the ARN of a queue, topic, function, event bus or bucket, got %r" % (
                option,
                arn,
            )
    return None


def desired_config(params):
    """The PutFunctionEventInvokeConfig arguments (FunctionName aside) the options ask for."""
    config = {}
    if params.get("maximum_retry_attempts") is not None:
        config["MaximumRetryAttempts"] = params["maximum_retry_attempts"]
    if params.get("maximum_event_age_in_seconds") is not None:
        config["MaximumEventAgeInSeconds"] = params["maximum_event_age_in_seconds"]
    destinations = {
        key: {"Destination": params[option]} for option, key in _DESTINATIONS if params.get(option)
    }
    if destinations:
        config["DestinationConfig"] = destinations
    return config


def effective(config):
    """What a configuration does, for comparison: Lambda's defaults for settings it does not
    report, no destination for an empty one. None (no configuration) means the defaults too."""
    config = config or {}
    destinations = config.get("DestinationConfig") or {}
    retries = config.get("MaximumRetryAttempts")
    age = config.get("MaximumEventAgeInSeconds")
    result = dict(
        maximum_retry_attempts=DEFAULT_RETRY_ATTEMPTS if retries is None else retries,
        maximum_event_age_in_seconds=DEFAULT_EVENT_AGE_S if age is None else age,
    )
    for option, key in _DESTINATIONS:
        result[option] = (destinations.get(key) or {}).get("Destination") or None
    return result


def as_result(config):
    """The API's answer as the module returns it: snake_case, a timestamp as ISO 8601."""
    if not config:
        return {}
    config = dict(config)
    config.pop("ResponseMetadata", None)
    if isinstance(config.get("LastModified"), datetime.datetime):
        config["LastModified"] = config["LastModified"].isoformat()
    return camel_dict_to_snake_dict(config)


def current_config(client, function_name):
    """(the function exists, its configuration or None)."""
    try:
        return True, client.get_function_event_invoke_config(FunctionName=function_name, aws_retry=True)
    except is_boto3_error_code("ResourceNotFoundException"):
        pass
    # The same error says "no such function" and "no configuration": ask about the function.
    try:
        client.get_function_configuration(FunctionName=function_name, aws_retry=True)
    except is_boto3_error_code("ResourceNotFoundException"):
        return False, None
    return True, None


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    name = params["function_name"]
    problem = check_params(params)
    if problem:
        module.fail_json(msg="Lambda function %s: %s" % (name, problem))
    client = module.client(
        "lambda",
        retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=["ResourceConflictException"]),
    )

    def finish(changed, config, before, after):
        module.exit_json(
            changed=changed, event_invoke_config=as_result(config), diff=dict(before=before, after=after)
        )

    try:
        exists, current = current_config(client, name)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to read the event invoke configuration of function %s" % name)
    before = effective(current) if current else {}

    if params["state"] == "absent":
        if current is None:
            finish(False, None, {}, {})
        if not module.check_mode:
            try:
                client.delete_function_event_invoke_config(FunctionName=name, aws_retry=True)
            except is_boto3_error_code("ResourceNotFoundException"):
                pass  # deleted meanwhile: the state asked for
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
                module.fail_json_aws(
                    e, msg="Failed to delete the event invoke configuration of function %s" % name
                )
        finish(True, None, before, {})

    desired = desired_config(params)
    after = effective(desired)
    if not exists:
        if module.check_mode:
            finish(True, desired, {}, after)
        module.fail_json(
            msg="Lambda function %s does not exist: create it before its event invoke configuration" % name
        )
    if current is not None and before == after:
        finish(False, current, before, after)
    if module.check_mode:
        finish(True, desired, before, after)
    try:
        written = client.put_function_event_invoke_config(FunctionName=name, aws_retry=True, **desired)
    except is_boto3_error_code("InvalidParameterValueException") as e:
        module.fail_json_aws(
            e,
            msg="Lambda refused the event invoke configuration of function %s (each destination must "
            "exist and the function's execution role must be allowed to send to it)" % name,
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to set the event invoke configuration of function %s" % name)
    finish(True, written, before, after)


if __name__ == "__main__":
    main()
