"""playbooks/intake.yml against the local endpoint: check mode, a real run, a re-run, least privilege.

moto stores the intake Lambda's event invoke configuration but cannot invoke the Lambda here, so
the tests read the configuration back; a failed event reaching the intake-failures queue happens
only in AWS.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from capillary.contract.naming import deployment_names
from capillary.local.endpoint import LocalAWS

pytestmark = pytest.mark.integration

PLAYBOOK = "playbooks/intake.yml"
NAMES = deployment_names("pbtest")
# The AWS layout (Lambda target, TLS-only policy) for the lifecycle test; the local layout (events
# queue, no TLS policy: the endpoint speaks plain HTTP) for the least-privilege test.
VARS = {
    "capillary_deployment": "pbtest",
    "intake_platform": "aws",
    "intake_webhook_key": "st2-secret-key",
    "intake_function_retry_attempts": 1,
    "intake_function_max_event_age_s": 3600,
}
LOCAL_VARS = {"capillary_deployment": "pbtest", "intake_platform": "local"}


def _everything(aws: LocalAWS) -> dict[str, Any]:
    """What exists in the account, in the services the role touches."""
    iam = aws.client("iam")
    return {
        "buckets": [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]],
        "queues": aws.client("sqs").list_queues().get("QueueUrls", []),
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"]],
        "profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]],
        "parameters": [p["Name"] for p in aws.client("ssm").describe_parameters()["Parameters"]],
        "functions": [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]],
        "topics": aws.client("sns").list_topics()["Topics"],
    }


def _kms_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document that grant any KMS action."""
    return [
        s
        for s in document["Statement"]
        if any(a.startswith("kms:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    ]


def _customer_key(aws: LocalAWS, alias: str) -> str:
    """A customer-managed symmetric key with an alias; its ARN."""
    kms = aws.client("kms")
    arn: str = kms.create_key(Description="Capillary queues (test)")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def _denied(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        return code in ("AccessDenied", "AccessDeniedException", "403")
    return False


def test_check_mode_then_a_real_run_then_nothing_changes(aws: LocalAWS, playbook: Any) -> None:
    # GIVEN an empty account WHEN the playbook runs in check mode THEN nothing is created
    playbook(PLAYBOOK, extra_vars=VARS, check=True).assert_ok()
    assert _everything(aws) == {k: [] for k in _everything(aws)}

    # WHEN it runs for real THEN every resource exists, named from the deployment
    first = playbook(PLAYBOOK, extra_vars=VARS).assert_ok()
    assert first.changed > 0
    s3, sqs, ssm, iam = aws.client("s3"), aws.client("sqs"), aws.client("ssm"), aws.client("iam")
    assert NAMES.bucket in _everything(aws)["buckets"]
    blocked = s3.get_public_access_block(Bucket=NAMES.bucket)["PublicAccessBlockConfiguration"]
    assert all(blocked.values())
    rules = s3.get_bucket_encryption(Bucket=NAMES.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=NAMES.bucket)["Status"] == "Enabled"
    policy = json.loads(s3.get_bucket_policy(Bucket=NAMES.bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=NAMES.bucket)["Rules"]}
    assert lifecycle["capillary-inputs"]["Transitions"][0]["Days"] == 30
    assert lifecycle["capillary-inputs"]["Expiration"]["Days"] == 365

    work = sqs.get_queue_url(QueueName=NAMES.work_queue)["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=NAMES.dead_letter_queue)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == str(14400 + 900)
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "20"
    assert attrs["KmsMasterKeyId"] == "alias/aws/sqs"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 3 and redrive["deadLetterTargetArn"].endswith(
        NAMES.dead_letter_queue
    )
    dlq_retention = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["MessageRetentionPeriod"])
    assert int(dlq_retention["Attributes"]["MessageRetentionPeriod"]) > int(attrs["MessageRetentionPeriod"])
    # AND the intake-failures queue is encrypted and keeps its records as long as the DLQ
    failures = sqs.get_queue_url(QueueName=NAMES.intake_failures_queue)["QueueUrl"]
    failures_attrs = sqs.get_queue_attributes(QueueUrl=failures, AttributeNames=["All"])["Attributes"]
    assert failures_attrs["KmsMasterKeyId"] == "alias/aws/sqs"
    assert failures_attrs["MessageRetentionPeriod"] == dlq_retention["Attributes"]["MessageRetentionPeriod"]

    secret = ssm.get_parameter(Name=f"{NAMES.ssm_secrets}/webhook_key", WithDecryption=True)["Parameter"]
    assert secret["Type"] == "SecureString" and secret["Value"] == "st2-secret-key"
    assert ssm.get_parameter(Name=f"{NAMES.ssm_config}/work_queue_url")["Parameter"]["Value"] == work
    function = aws.client("lambda").get_function(FunctionName=NAMES.intake_function)["Configuration"]
    assert function["Handler"] == "capillary.intake.handler.handler"
    env = function["Environment"]["Variables"]
    assert env["CAPILLARY_WORK_QUEUE_URL"] == work
    assert "st2-secret-key" not in json.dumps(env)  # the key is an SSM parameter name, never a value
    # AND an S3 event the handler fails goes, after the retries set, to the intake-failures queue
    invoke = aws.client("lambda").get_function_event_invoke_config(FunctionName=NAMES.intake_function)
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == failures_attrs["QueueArn"]
    assert not invoke["DestinationConfig"].get("OnSuccess", {}).get("Destination")
    assert (invoke["MaximumRetryAttempts"], invoke["MaximumEventAgeInSeconds"]) == (1, 3600)
    assert (
        iam.get_instance_profile(InstanceProfileName=NAMES.worker_instance_profile)["InstanceProfile"][
            "Roles"
        ][0]["RoleName"]
        == NAMES.worker_role
    )
    worker_policy = json.dumps(iam.get_role_policy(RoleName=NAMES.worker_role, PolicyName="capillary-worker"))
    assert "ec2:TerminateInstances" not in worker_policy
    # AND the AWS-managed queue key (the default) needs no KMS grant: neither role's policy has one
    for role, policy_name in (
        (NAMES.worker_role, "capillary-worker"),
        (NAMES.intake_role, "capillary-intake"),
    ):
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        assert "kms:" not in json.dumps(document)

    # AND the bucket notifies the handler for inputs/ and outputs/, and may invoke it
    notifications = s3.get_bucket_notification_configuration(Bucket=NAMES.bucket)
    targets = notifications["LambdaFunctionConfigurations"]
    assert sorted(n["Filter"]["Key"]["FilterRules"][0]["Value"] for n in targets) == ["inputs/", "outputs/"]
    assert {n["LambdaFunctionArn"] for n in targets} == {function["FunctionArn"]}
    permission = aws.client("lambda").get_policy(FunctionName=NAMES.intake_function)["Policy"]
    assert "s3.amazonaws.com" in permission and NAMES.bucket in permission
    # AND the TLS-only policy is in force: the endpoint speaks plain HTTP, so a write is refused
    with pytest.raises(ClientError):
        s3.put_object(Bucket=NAMES.bucket, Key="inputs/plain-abc123-somatic.tar.gz", Body=b"x")

    # WHEN it runs again THEN nothing changes
    playbook(PLAYBOOK, extra_vars=VARS).assert_idempotent()


def test_the_local_events_queue_redrives_to_its_dead_letter_queue(aws: LocalAWS, playbook: Any) -> None:
    # GIVEN an empty account WHEN the playbook deploys the local platform
    playbook(PLAYBOOK, extra_vars={**LOCAL_VARS, "intake_max_receive_count": 4}).assert_ok()
    sqs = aws.client("sqs")
    events = sqs.get_queue_url(QueueName=NAMES.events_queue)["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=NAMES.events_dead_letter_queue)["QueueUrl"]
    # THEN what intake-local cannot handle moves to the events DLQ after intake_max_receive_count receives
    attrs = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["RedrivePolicy"])["Attributes"]
    dlq_attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn", "MessageRetentionPeriod"])
    policy = json.loads(attrs["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_attrs["Attributes"]["QueueArn"]
    assert int(policy["maxReceiveCount"]) == 4
    assert dlq_attrs["Attributes"]["MessageRetentionPeriod"] == "1209600"  # intake_dlq_retention_s
    # WHEN it runs again THEN nothing changes
    playbook(PLAYBOOK, extra_vars={**LOCAL_VARS, "intake_max_receive_count": 4}).assert_idempotent()


def test_worker_credentials_can_do_their_job_and_nothing_else(aws: LocalAWS, playbook: Any) -> None:
    playbook(PLAYBOOK, extra_vars=LOCAL_VARS).assert_ok()
    notifications = aws.client("s3").get_bucket_notification_configuration(Bucket=NAMES.bucket)
    assert {n["QueueArn"].rsplit(":", 1)[1] for n in notifications["QueueConfigurations"]} == {
        NAMES.events_queue
    }
    # Locally the bucket notifies the events queue and nothing could invoke a Lambda: none is deployed
    assert aws.client("lambda").list_functions()["Functions"] == []
    iam, s3, sqs = aws.client("iam"), aws.client("s3"), aws.client("sqs")
    # GIVEN a user holding exactly the worker role's policy, and objects in every prefix
    document = iam.get_role_policy(RoleName=NAMES.worker_role, PolicyName="capillary-worker")[
        "PolicyDocument"
    ]
    iam.create_user(UserName="probe")
    iam.put_user_policy(UserName="probe", PolicyName="capillary-worker", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="probe")["AccessKey"]
    for prefix in ("inputs", "rejected"):
        s3.put_object(Bucket=NAMES.bucket, Key=f"{prefix}/b-abc123-somatic.tar.gz", Body=b"x")
    work = sqs.get_queue_url(QueueName=NAMES.work_queue)["QueueUrl"]
    events = sqs.get_queue_url(QueueName=NAMES.events_queue)["QueueUrl"]

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            aws_session_token=None,
        )

    ws3, wsqs = client("s3"), client("sqs")
    # WHEN moto enforces IAM from now on
    aws.set_iam_enforcement(0)
    try:
        # THEN the worker reads inputs/, writes outputs/, works its queue and reads its parameters
        assert (
            ws3.get_object(Bucket=NAMES.bucket, Key="inputs/b-abc123-somatic.tar.gz")["Body"].read() == b"x"
        )
        ws3.put_object(Bucket=NAMES.bucket, Key="outputs/b-abc123-somatic-output.tar.gz", Body=b"r")
        wsqs.receive_message(QueueUrl=work, WaitTimeSeconds=0)
        # AND is refused everywhere else
        assert _denied(
            ws3.put_object, Bucket=NAMES.bucket, Key="inputs/evil-abc123-somatic.tar.gz", Body=b"x"
        )
        assert _denied(ws3.get_object, Bucket=NAMES.bucket, Key="rejected/b-abc123-somatic.tar.gz")
        assert _denied(ws3.delete_object, Bucket=NAMES.bucket, Key="inputs/b-abc123-somatic.tar.gz")
        assert _denied(wsqs.send_message, QueueUrl=work, MessageBody="{}")
        assert _denied(wsqs.receive_message, QueueUrl=events, WaitTimeSeconds=0)
        assert _denied(client("ec2").terminate_instances, InstanceIds=["i-0123456789abcdef0"])
    finally:
        aws.set_iam_enforcement(None)
    # moto authorizes SSM calls against the resource "*", so a path-scoped grant cannot be
    # exercised there; the document itself must scope it to the deployment's own path.
    # (tests/integration/test_worker_policy.py: its config path only, never secrets/*).
    [ssm_grant] = [s for s in document["Statement"] if any(a.startswith("ssm:") for a in s["Action"])]
    assert [r.split(":parameter", 1)[1] for r in ssm_grant["Resource"]] == [
        NAMES.ssm_config,
        f"{NAMES.ssm_config}/*",
    ]
    assert ssm_grant["Action"] == ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]


def test_the_handler_may_record_failures_on_its_queue_and_do_nothing_else_there(
    aws: LocalAWS, playbook: Any
) -> None:
    # The local layout, with the Lambda deployed all the same (it is not by default there)
    playbook(PLAYBOOK, extra_vars={**LOCAL_VARS, "intake_function_deploy": True}).assert_ok()
    iam, sqs = aws.client("iam"), aws.client("sqs")
    failures = sqs.get_queue_url(QueueName=NAMES.intake_failures_queue)["QueueUrl"]
    failures_arn = sqs.get_queue_attributes(QueueUrl=failures, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    dlq = sqs.get_queue_url(QueueName=NAMES.dead_letter_queue)["QueueUrl"]
    # GIVEN the handler's policy: one statement names the intake-failures queue, for SendMessage only
    document = iam.get_role_policy(RoleName=NAMES.intake_role, PolicyName="capillary-intake")[
        "PolicyDocument"
    ]
    on_failures = [s for s in document["Statement"] if failures_arn in json.dumps(s["Resource"])]
    assert [(s["Action"], s["Resource"]) for s in on_failures] == [("sqs:SendMessage", failures_arn)]
    # AND the Lambda's on-failure destination is that queue, as Lambda requires of its role
    invoke = aws.client("lambda").get_function_event_invoke_config(FunctionName=NAMES.intake_function)
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == failures_arn

    # WHEN a user holding exactly that policy acts while moto enforces IAM
    iam.create_user(UserName="handler-probe")
    iam.put_user_policy(
        UserName="handler-probe", PolicyName="capillary-intake", PolicyDocument=json.dumps(document)
    )
    key = iam.create_access_key(UserName="handler-probe")["AccessKey"]
    hsqs = boto3.client(
        "sqs",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        aws_session_token=None,
    )
    aws.set_iam_enforcement(0)
    try:
        # THEN it may send a record to the intake-failures queue
        hsqs.send_message(
            QueueUrl=failures, MessageBody=json.dumps({"requestContext": {"condition": "RetriesExhausted"}})
        )
        # AND may not read, delete or purge there, nor send to the dead-letter queue
        assert _denied(hsqs.receive_message, QueueUrl=failures, WaitTimeSeconds=0)
        assert _denied(hsqs.purge_queue, QueueUrl=failures)
        assert _denied(hsqs.send_message, QueueUrl=dlq, MessageBody="{}")
    finally:
        aws.set_iam_enforcement(None)
    assert (
        sqs.get_queue_attributes(QueueUrl=failures, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "1"
    )


@pytest.mark.parametrize("named_by", ["alias", "arn"])
def test_a_customer_managed_queue_key_is_granted_by_its_arn_through_sqs_only(
    aws: LocalAWS, playbook: Any, named_by: str
) -> None:
    """A customer-managed key encrypts every queue, and the roles get exactly the KMS grants SQS needs.

    moto does not enforce KMS on SQS (a send or receive succeeds whatever the caller may do with
    the queue's key), so this checks the policy documents the role writes, not their enforcement.
    """
    # GIVEN a customer-managed key, named by its alias or by its ARN
    key_arn = _customer_key(aws, "alias/capillary-queues")
    given = "alias/capillary-queues" if named_by == "alias" else key_arn
    extra_vars = {**LOCAL_VARS, "intake_queue_kms_key": given}
    # WHEN the playbook runs in check mode THEN it looks the key up and creates nothing (the check
    # and the re-run below do not depend on how the key is named: once, for the alias)
    if named_by == "alias":
        playbook(PLAYBOOK, extra_vars=extra_vars, check=True).assert_ok()
        assert _everything(aws) == {k: [] for k in _everything(aws)}

    # WHEN it runs for real THEN every queue it creates is encrypted with that key, as named
    playbook(PLAYBOOK, extra_vars=extra_vars).assert_ok()
    sqs, iam = aws.client("sqs"), aws.client("iam")
    for queue in (NAMES.work_queue, NAMES.dead_letter_queue, NAMES.intake_failures_queue, NAMES.events_queue):
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["KmsMasterKeyId"])["Attributes"]
        assert attrs["KmsMasterKeyId"] == given, queue
    # AND the worker (a consumer) may decrypt, the handler (a producer and, locally, a consumer) may
    # generate data keys and decrypt: on the key's ARN (never the alias), through SQS only
    via_sqs = {"StringEquals": {"kms:ViaService": f"sqs.{aws.region}.amazonaws.com"}}
    worker = iam.get_role_policy(RoleName=NAMES.worker_role, PolicyName="capillary-worker")["PolicyDocument"]
    handler = iam.get_role_policy(RoleName=NAMES.intake_role, PolicyName="capillary-intake")["PolicyDocument"]
    assert _kms_statements(worker) == [
        {
            "Sid": "ReadEncryptedMessages",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arn,
            "Condition": via_sqs,
        }
    ]
    assert _kms_statements(handler) == [
        {
            "Sid": "SendAndReadEncryptedMessages",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": key_arn,
            "Condition": via_sqs,
        }
    ]

    # WHEN it runs again THEN nothing changes
    if named_by == "alias":
        playbook(PLAYBOOK, extra_vars=extra_vars).assert_idempotent()


@pytest.mark.parametrize("state", ["unknown", "Disabled", "PendingDeletion"])
def test_a_queue_key_that_cannot_encrypt_fails_the_run_before_anything_is_created(
    aws: LocalAWS, playbook: Any, state: str
) -> None:
    # GIVEN an alias no key has, or a customer-managed key that is disabled or pending deletion
    kms = aws.client("kms")
    if state == "unknown":
        given = "alias/no-such-key"
    else:
        given = _customer_key(aws, "alias/capillary-queues")
        key_id = given.rsplit("/", 1)[1]  # moto finds a key to disable or delete by its id only
        if state == "Disabled":
            kms.disable_key(KeyId=key_id)
        else:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    # WHEN the playbook runs with it
    recap = playbook(PLAYBOOK, extra_vars={**LOCAL_VARS, "intake_queue_kms_key": given})
    # THEN the key check fails, naming the variable, its value, the region and what is wrong
    assert recap.rc != 0 and recap.failed == 1, recap.tail()
    assert recap.outcomes("Check that the queue key exists and can encrypt the queues") == ["fatal"]
    # The failure as printed (the YAML result format may wrap it over several lines)
    message = " ".join(recap.stdout.partition("fatal:")[2].partition("PLAY RECAP")[0].split())
    assert "intake_queue_kms_key" in message and given in message and aws.region in message, message
    assert ("no such key" if state == "unknown" else f"is {state}") in message, message
    # AND nothing was created
    assert _everything(aws) == {k: [] for k in _everything(aws)}
