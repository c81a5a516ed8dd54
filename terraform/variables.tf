# Named after the Ansible variables they feed: capillary_deployment is the one value every
# resource name derives from (src/capillary/contract/naming.py); the others mirror roles/intake defaults.

variable "capillary_deployment" {
  type        = string
  description = "The deployment's name: 1-24 lowercase letters, digits and hyphens. Prefixes every resource (capillary-<deployment>-...)."

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$", var.capillary_deployment))
    error_message = "capillary_deployment: use 1-24 lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "aws_region" {
  type        = string
  description = "The region of the deployment."
  default     = "eu-west-1"
}

variable "intake_bucket_name" {
  type        = string
  description = "Override of the bucket name (S3 names are global); empty for capillary-<deployment>-samples."
  default     = ""
}

variable "intake_engine_timeout_s" {
  type        = number
  description = "The consumer's engine timeout; the work queue's visibility timeout is derived from it."
  default     = 14400
}

variable "intake_visibility_margin_s" {
  type        = number
  description = "Seconds added to the engine timeout for the work queue's visibility timeout."
  default     = 900
}

variable "intake_max_receive_count" {
  type        = number
  description = "Receives before a message goes to the dead-letter queue."
  default     = 3
}

variable "intake_queue_retention_s" {
  type        = number
  description = "Retention of the work queue."
  default     = 345600
}

variable "intake_dlq_retention_s" {
  type        = number
  description = "Retention of the dead-letter and intake-failures queues (longer than the work queue's)."
  default     = 1209600
}

variable "intake_receive_wait_s" {
  type        = number
  description = "Long polling of the work queue."
  default     = 20
}

variable "intake_inputs_glacier_days" {
  type        = number
  description = "Days before inputs/ moves to Glacier (0: never)."
  default     = 30
}

variable "intake_inputs_expire_days" {
  type        = number
  description = "Days before inputs/ expires (0: never)."
  default     = 365
}

variable "intake_outputs_glacier_days" {
  type        = number
  description = "Days before outputs/ moves to Glacier (0: never)."
  default     = 90
}

variable "intake_rejected_expire_days" {
  type        = number
  description = "Days before rejected/ reports expire."
  default     = 30
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource."
  default     = {}
}

variable "run_ansible" {
  type        = bool
  description = "Hand over to playbooks/intake.yml (handler, parameters, notifications) once the resources exist."
  default     = true
}

variable "ansible_playbook" {
  type        = string
  description = "The ansible-playbook to run (the Capillary venv's, so the collections and the capillary package are found)."
  default     = "../.venv/bin/ansible-playbook"
}
