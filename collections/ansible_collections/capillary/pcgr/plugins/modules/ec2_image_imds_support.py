#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_image_imds_support
version_added: 0.2.0
short_description: Make every instance launched from an AMI require IMDSv2
description:
  - Sets an AMI's C(ImdsSupport) to V(v2.0) (C(ModifyImageAttribute)). Instances launched from
    the image then default to C(HttpTokens=required) - the token-less IMDSv1 is off.
  - For images registered by tools that cannot set it at registration, such as Debian's Packer
    1.6.6, which has no C(imds_support) option. M(amazon.aws.ec2_ami) has none either.
  - The attribute is read first and written only when it is not V(v2.0) yet, so a re-run reports
    no change. EC2 cannot take the setting back; the module has no way to either.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  image_id:
    description:
      - The AMI's id. It must be owned by the account.
    type: str
    required: true
  imds_support:
    description:
      - The value to set. V(v2.0) is the only value EC2 accepts.
    type: str
    default: v2.0
    choices: [v2.0]
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Require IMDSv2 on every worker launched from the new image
  capillary.pcgr.ec2_image_imds_support:
    image_id: ami-0123456789abcdef0
"""

RETURN = r"""
image_id:
  description: The AMI's id.
  returned: always
  type: str
  sample: ami-0123456789abcdef0
imds_support:
  description: The AMI's ImdsSupport after the task (in check mode, what would be set).
  returned: always
  type: str
  sample: v2.0
"""

try:  # noqa: SIM105 - the amazon.aws idiom; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ARGUMENT_SPEC = dict(
    image_id=dict(type="str", required=True),
    imds_support=dict(type="str", default="v2.0", choices=["v2.0"]),
)

_NOT_FOUND = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")


def main():
    module = AnsibleAWSModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    image_id = module.params["image_id"]
    desired = module.params["imds_support"]
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())

    try:
        answer = client.describe_image_attribute(ImageId=image_id, Attribute="imdsSupport", aws_retry=True)
    except is_boto3_error_code(_NOT_FOUND) as e:
        module.fail_json_aws(e, msg="AMI %s: no such image in this account and region" % image_id)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to read the ImdsSupport of AMI %s" % image_id)
    current = (answer.get("ImdsSupport") or {}).get("Value") or ""
    diff = dict(before=dict(imds_support=current), after=dict(imds_support=desired))

    if current == desired:
        module.exit_json(changed=False, image_id=image_id, imds_support=current, diff=diff)
    if not module.check_mode:
        try:
            client.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": desired}, aws_retry=True)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="Failed to set the ImdsSupport of AMI %s to %s" % (image_id, desired))
    module.exit_json(changed=True, image_id=image_id, imds_support=desired, diff=diff)


if __name__ == "__main__":
    main()
