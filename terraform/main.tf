# Terraform owns the deployment's long-lived cloud resources: the samples bucket, the work,
# dead-letter and intake-failures queues, the notification topic, and the IAM roles. Ansible owns
# everything that runs or changes with a release: the intake handler's code and its event invoke
# configuration, the parameters, the bucket notifications (playbooks/intake.yml with intake_external_resources=true, which makes the
# role look these resources up instead of managing them), images (bake.yml) and workers
# (up.yml / down.yml). No resource is managed by both. See docs/integrations/terraform.md.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  # The same names as capillary.contract.naming.deployment_names (a test compares them).
  names = {
    bucket                  = var.intake_bucket_name != "" ? var.intake_bucket_name : "capillary-${var.capillary_deployment}-samples"
    work_queue              = "capillary-${var.capillary_deployment}-work"
    dead_letter_queue       = "capillary-${var.capillary_deployment}-work-dlq"
    intake_failures_queue   = "capillary-${var.capillary_deployment}-intake-failures"
    notify_topic            = "capillary-${var.capillary_deployment}-notify"
    worker_role             = "capillary-${var.capillary_deployment}-worker"
    worker_instance_profile = "capillary-${var.capillary_deployment}-worker"
    intake_role             = "capillary-${var.capillary_deployment}-intake"
    intake_function         = "capillary-${var.capillary_deployment}-intake"
    ssm_prefix              = "/capillary/${var.capillary_deployment}"
  }

  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  ssm_arn   = "arn:${local.partition}:ssm:${var.aws_region}:${local.account}:parameter${local.names.ssm_prefix}"
  log_group = "arn:${local.partition}:logs:${var.aws_region}:${local.account}:log-group:/aws/lambda/${local.names.intake_function}"

  # SQS allows visibility timeouts up to 12 hours.
  visibility_timeout_s = min(var.intake_engine_timeout_s + var.intake_visibility_margin_s, 43200)
}

# --- Bucket -----------------------------------------------------------------------------------

resource "aws_s3_bucket" "samples" {
  bucket = local.names.bucket

  lifecycle {
    prevent_destroy = true # patient samples and reports live here
  }
}

resource "aws_s3_bucket_public_access_block" "samples" {
  bucket                  = aws_s3_bucket.samples.id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "samples" {
  bucket = aws_s3_bucket.samples.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "samples" {
  bucket = aws_s3_bucket.samples.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  bucket = aws_s3_bucket.samples.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.samples.arn, "${aws_s3_bucket.samples.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.samples]
}

# 0 days means never, as in roles/intake.
resource "aws_s3_bucket_lifecycle_configuration" "samples" {
  bucket = aws_s3_bucket.samples.id

  rule {
    id     = "capillary-inputs"
    status = "Enabled"
    filter {
      prefix = "inputs/"
    }
    dynamic "transition" {
      for_each = var.intake_inputs_glacier_days > 0 ? [var.intake_inputs_glacier_days] : []
      content {
        days          = transition.value
        storage_class = "GLACIER"
      }
    }
    dynamic "expiration" {
      for_each = var.intake_inputs_expire_days > 0 ? [var.intake_inputs_expire_days] : []
      content {
        days = expiration.value
      }
    }
  }

  rule {
    id     = "capillary-outputs"
    status = "Enabled"
    filter {
      prefix = "outputs/"
    }
    dynamic "transition" {
      for_each = var.intake_outputs_glacier_days > 0 ? [var.intake_outputs_glacier_days] : []
      content {
        days          = transition.value
        storage_class = "GLACIER"
      }
    }
  }

  rule {
    id     = "capillary-rejected"
    status = "Enabled"
    filter {
      prefix = "rejected/"
    }
    dynamic "expiration" {
      for_each = var.intake_rejected_expire_days > 0 ? [var.intake_rejected_expire_days] : []
      content {
        days = expiration.value
      }
    }
  }
}

# --- Queues and topic -------------------------------------------------------------------------

resource "aws_sqs_queue" "dead_letter" {
  name                      = local.names.dead_letter_queue
  message_retention_seconds = var.intake_dlq_retention_s
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "work" {
  name                       = local.names.work_queue
  visibility_timeout_seconds = local.visibility_timeout_s
  receive_wait_time_seconds  = var.intake_receive_wait_s
  message_retention_seconds  = var.intake_queue_retention_s
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.intake_max_receive_count
  })
}

# The intake handler's on-failure destination (intake.yml points the Lambda's event invoke
# configuration at it): S3 events Lambda gave up on. Kept as long as the dead-letter queue.
resource "aws_sqs_queue" "intake_failures" {
  name                      = local.names.intake_failures_queue
  message_retention_seconds = var.intake_dlq_retention_s
  sqs_managed_sse_enabled   = true
}

resource "aws_sns_topic" "notify" {
  name         = local.names.notify_topic
  display_name = "Capillary ${var.capillary_deployment}"
}

# --- IAM: the same statements as roles/intake (a test compares them) ----------------------------

resource "aws_iam_role" "worker" {
  name        = local.names.worker_role
  description = "Capillary ${var.capillary_deployment} workers - read inputs, write outputs, work the queue"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_instance_profile" "worker" {
  name = local.names.worker_instance_profile
  role = aws_iam_role.worker.name
}

# Least privilege: no ec2:TerminateInstances; a worker stops itself by shutting down.
resource "aws_iam_role_policy" "worker" {
  name = "capillary-worker"
  role = aws_iam_role.worker.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "ReadInputs", Effect = "Allow", Action = "s3:GetObject", Resource = "${aws_s3_bucket.samples.arn}/inputs/*" },
      {
        Sid      = "WriteOutputs"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${aws_s3_bucket.samples.arn}/outputs/*"
      },
      {
        Sid       = "ListOwnPrefixes"
        Effect    = "Allow"
        Action    = "s3:ListBucket"
        Resource  = aws_s3_bucket.samples.arn
        Condition = { StringLike = { "s3:prefix" = ["inputs/*", "outputs/*"] } }
      },
      {
        Sid      = "WorkTheQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
        Resource = aws_sqs_queue.work.arn
      },
      {
        # Its config path only: never secrets/* (the intake's webhook key, the Slack URL).
        Sid      = "ReadOwnParameters"
        Effect   = "Allow"
        Action   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
        Resource = ["${local.ssm_arn}/config", "${local.ssm_arn}/config/*"]
      },
      {
        # The run record's spot price at launch: a read IAM scopes to no resource, held to the region.
        Sid       = "ReadSpotPriceHistory"
        Effect    = "Allow"
        Action    = "ec2:DescribeSpotPriceHistory"
        Resource  = "*"
        Condition = { StringEquals = { "aws:RequestedRegion" = var.aws_region } }
      },
      {
        # An idle worker leaves its own Auto Scaling group, decrementing its desired capacity (issue 16).
        Sid       = "LeaveOwnWorkerGroup"
        Effect    = "Allow"
        Action    = "autoscaling:TerminateInstanceInAutoScalingGroup"
        Resource  = "arn:${local.partition}:autoscaling:${var.aws_region}:${local.account}:autoScalingGroup:*:autoScalingGroupName/capillary-${var.capillary_deployment}-workers-*"
        Condition = { StringEquals = { "autoscaling:ResourceTag/capillary:deployment" = var.capillary_deployment } }
      },
    ]
  })
}

resource "aws_iam_role" "intake" {
  name        = local.names.intake_role
  description = "Capillary ${var.capillary_deployment} intake handler"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "intake" {
  name = "capillary-intake"
  role = aws_iam_role.intake.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "QueueWork", Effect = "Allow", Action = "sqs:SendMessage", Resource = aws_sqs_queue.work.arn },
      # Lambda sends the record of an event the handler failed with the handler's own role.
      { Sid = "RecordIntakeFailures", Effect = "Allow", Action = "sqs:SendMessage", Resource = aws_sqs_queue.intake_failures.arn },
      # The events queue exists on the local platform only; the statement is kept identical to the role's.
      {
        Sid      = "ReadLocalEvents"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
        Resource = "arn:${local.partition}:sqs:${var.aws_region}:${local.account}:capillary-${var.capillary_deployment}-events"
      },
      { Sid = "WriteRejectionReports", Effect = "Allow", Action = "s3:PutObject", Resource = "${aws_s3_bucket.samples.arn}/rejected/*" },
      { Sid = "PresignOutputs", Effect = "Allow", Action = "s3:GetObject", Resource = "${aws_s3_bucket.samples.arn}/outputs/*" },
      { Sid = "ReadSecrets", Effect = "Allow", Action = "ssm:GetParameter", Resource = "${local.ssm_arn}/secrets/*" },
      { Sid = "Notify", Effect = "Allow", Action = "sns:Publish", Resource = aws_sns_topic.notify.arn },
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [local.log_group, "${local.log_group}:*"]
      },
    ]
  })
}

# --- Hand-over to Ansible -----------------------------------------------------------------------
# Re-runs when a resource it depends on is replaced; the playbook itself is idempotent.

resource "terraform_data" "intake_playbook" {
  count = var.run_ansible ? 1 : 0

  triggers_replace = [
    aws_s3_bucket.samples.arn,
    aws_sqs_queue.work.arn,
    aws_sqs_queue.intake_failures.arn,
    aws_sns_topic.notify.arn,
    aws_iam_role.intake.arn,
    aws_iam_role_policy.intake.policy,
  ]

  provisioner "local-exec" {
    working_dir = "${path.module}/.."
    command     = "${var.ansible_playbook} playbooks/intake.yml -e capillary_deployment=${var.capillary_deployment} -e intake_bucket_name=${local.names.bucket} -e intake_external_resources=true"
    environment = {
      AWS_REGION     = var.aws_region
      ANSIBLE_CONFIG = "ansible.cfg"
    }
  }

  depends_on = [
    aws_s3_bucket_policy.tls_only,
    aws_s3_bucket_lifecycle_configuration.samples,
    aws_iam_role_policy.worker,
    aws_iam_role_policy.intake,
    aws_iam_instance_profile.worker,
  ]
}
