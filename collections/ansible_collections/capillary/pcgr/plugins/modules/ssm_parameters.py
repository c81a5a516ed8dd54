#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ssm_parameters
version_added: 0.2.0
short_description: Set a group of Parameter Store parameters under one path in one task
description:
  - Declares the values of several Systems Manager Parameter Store parameters under one
    hierarchy path - plain C(String)s and C(SecureString)s - and writes only those that are
    missing or hold another value or type (C(PutParameter)).
  - The path is read once (C(GetParametersByPath), recursive, decrypted), so a run that changes
    nothing costs one paginated read, plus one C(ListTagsForResource) per parameter when
    O(tags) is given. M(community.aws.ssm_parameter) manages one parameter per task, with several
    calls for each.
  - Parameters under O(path) that are not listed are left alone; nothing is deleted.
  - C(SecureString) values are never logged or returned.
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  path:
    description:
      - The hierarchy the parameters live under, for example V(/capillary/demo). Every name in
        O(parameters) and O(secure_parameters) must be below it.
    type: str
    required: true
  parameters:
    description:
      - Full parameter names mapped to their C(String) values. Parameter Store refuses empty values.
    type: dict
    default: {}
  secure_parameters:
    description:
      - Full parameter names mapped to their C(SecureString) values (encrypted with O(key_id)).
    type: dict
    default: {}
  key_id:
    description:
      - The KMS key that encrypts the C(SecureString)s written; the account's V(alias/aws/ssm)
        when left out. Applies to the values written, existing ones are not re-encrypted.
    type: str
  tags:
    description:
      - Tags every listed parameter should carry. Left out, tags are not looked at.
    type: dict
  purge_tags:
    description:
      - Remove the tags of a listed parameter that O(tags) does not name (only when O(tags) is given).
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Record the deployment's configuration and secrets in Parameter Store
  capillary.pcgr.ssm_parameters:
    path: /capillary/demo
    parameters:
      /capillary/demo/config/platform: aws
      /capillary/demo/config/max_receive_count: "3"
    secure_parameters:
      /capillary/demo/secrets/webhook_key: "{{ webhook_key }}"
    tags:
      capillary:deployment: demo
"""

RETURN = r"""
created:
  description: The parameters that did not exist and were (or, in check mode, would be) written.
  returned: always
  type: list
  elements: str
  sample: ["/capillary/demo/config/platform"]
updated:
  description: The parameters whose value or type differed and were (would be) overwritten.
  returned: always
  type: list
  elements: str
  sample: []
retagged:
  description: The existing parameters whose tags were (would be) added to or removed.
  returned: always
  type: list
  elements: str
  sample: []
"""

try:  # noqa: SIM105 - the amazon.aws idiom; AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

STRING = "String"
SECURE = "SecureString"


def desired_parameters(path, parameters, secure_parameters):
    """{name: (type, value)} for the module's options; ValueError naming a bad name or value."""
    prefix = path.rstrip("/") + "/"
    if not path.startswith("/"):
        raise ValueError("path %r: a Parameter Store hierarchy starts with /" % path)
    wanted = {}
    for kind, values in ((STRING, parameters), (SECURE, secure_parameters)):
        for name, value in (values or {}).items():
            if not name.startswith(prefix):
                raise ValueError("parameter %s is not under path %s" % (name, path))
            if name in wanted:
                raise ValueError("parameter %s is both a String and a SecureString" % name)
            if value is None or str(value) == "":
                raise ValueError("parameter %s: Parameter Store refuses an empty value" % name)
            wanted[name] = (kind, str(value))
    return wanted


def plan_writes(current, wanted):
    """Which of `wanted` to create and which to overwrite, given `current` ({name: (type, value)})."""
    created = sorted(name for name in wanted if name not in current)
    updated = sorted(name for name in wanted if name in current and current[name] != wanted[name])
    return created, updated


def tag_changes(current_tags, tags, purge):
    """(tags to add or change, keys to remove) to go from `current_tags` to `tags`."""
    add = {k: str(v) for k, v in tags.items() if current_tags.get(k) != str(v)}
    remove = sorted(k for k in current_tags if k not in tags) if purge else []
    return add, remove


def shown(entry):
    """A value as a diff may show it: a SecureString's never."""
    kind, value = entry
    return value if kind == STRING else "(SecureString)"


@AWSRetry.jittered_backoff()
def read_path(client, path):
    """Every parameter under `path`, decrypted: {name: (type, value)}."""
    paginator = client.get_paginator("get_parameters_by_path")
    pages = paginator.paginate(Path=path.rstrip("/") or "/", Recursive=True, WithDecryption=True)
    return {p["Name"]: (p["Type"], p["Value"]) for p in pages.build_full_result()["Parameters"]}


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            parameters=dict(type="dict", default={}),
            secure_parameters=dict(type="dict", default={}, no_log=True),
            key_id=dict(type="str", no_log=False),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        wanted = desired_parameters(params["path"], params["parameters"], params["secure_parameters"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    client = module.client("ssm", retry_decorator=AWSRetry.jittered_backoff())
    try:
        current = read_path(client, params["path"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to read the parameters under %s" % params["path"])
    created, updated = plan_writes(current, wanted)
    tags = params["tags"]
    retagged = []
    tag_work = {}
    if tags is not None:
        for name in sorted(set(wanted) - set(created)):
            try:
                listed = client.list_tags_for_resource(
                    ResourceType="Parameter", ResourceId=name, aws_retry=True
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                module.fail_json_aws(e, msg="Failed to read the tags of %s" % name)
            have = {t["Key"]: t["Value"] for t in listed.get("TagList", [])}
            add, remove = tag_changes(have, tags, params["purge_tags"])
            if add or remove:
                retagged.append(name)
                tag_work[name] = (add, remove)
    changed = bool(created or updated or retagged)
    result = dict(changed=changed, created=created, updated=updated, retagged=retagged)
    if module._diff:
        result["diff"] = dict(
            before={n: shown(current[n]) for n in updated},
            after={n: shown(wanted[n]) for n in created + updated},
        )
    if module.check_mode or not changed:
        module.exit_json(**result)
    for name in created + updated:
        kind, value = wanted[name]
        args = dict(Name=name, Value=value, Type=kind)
        if kind == SECURE and params["key_id"]:
            args["KeyId"] = params["key_id"]
        if name in updated:
            args["Overwrite"] = True  # PutParameter refuses Tags together with Overwrite
        elif tags:
            args["Tags"] = [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]
        try:
            client.put_parameter(aws_retry=True, **args)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="Failed to write %s" % name)
    for name, (add, remove) in tag_work.items():
        try:
            if add:
                client.add_tags_to_resource(
                    ResourceType="Parameter",
                    ResourceId=name,
                    Tags=[{"Key": k, "Value": v} for k, v in sorted(add.items())],
                    aws_retry=True,
                )
            if remove:
                client.remove_tags_from_resource(
                    ResourceType="Parameter", ResourceId=name, TagKeys=remove, aws_retry=True
                )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="Failed to set the tags of %s" % name)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
