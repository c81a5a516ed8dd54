output "bucket" {
  description = "The samples bucket (inputs/, outputs/, rejected/)."
  value       = aws_s3_bucket.samples.id
}

output "work_queue_url" {
  description = "The work queue the workers consume."
  value       = aws_sqs_queue.work.url
}

output "dead_letter_queue_url" {
  description = "Where poison messages end."
  value       = aws_sqs_queue.dead_letter.url
}

output "intake_failures_queue_url" {
  description = "S3 events the intake handler failed on every attempt (its on-failure destination)."
  value       = aws_sqs_queue.intake_failures.url
}

output "notify_topic_arn" {
  description = "The topic finished samples are announced on."
  value       = aws_sns_topic.notify.arn
}

output "worker_instance_profile" {
  description = "The instance profile up.yml gives every worker."
  value       = aws_iam_instance_profile.worker.name
}
