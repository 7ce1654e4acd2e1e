variable "project_id" {
  description = "GCP project that hosts the pipeline."
  type        = string
}

variable "region" {
  description = "Region for Vertex AI, Dataflow, Artifact Registry and the buckets."
  type        = string
  default     = "us-central1"
}

variable "env" {
  description = "Environment name (dev, prod); used in resource names and labels."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.env))
    error_message = "env must be 2-15 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "name_prefix" {
  description = "Prefix for bucket, repository and service account names."
  type        = string
  default     = "assemblenet"
}

variable "labels" {
  description = "Extra labels applied to every labelled resource."
  type        = map(string)
  default     = {}
}

variable "force_destroy_buckets" {
  description = "Allow `terraform destroy` to delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "staging_retention_days" {
  description = "Age after which temporary files in the staging bucket are deleted."
  type        = number
  default     = 7
}

variable "pipeline_root_retention_days" {
  description = "Age after which intermediate pipeline artifacts are deleted (0 keeps them)."
  type        = number
  default     = 90
}

variable "noncurrent_version_retention_days" {
  description = "Age after which overwritten/deleted object versions are removed from versioned buckets."
  type        = number
  default     = 30
}

variable "kms_key_name" {
  description = <<-EOT
    Optional existing Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) used as the
    customer-managed encryption key for buckets and Artifact Registry. Null with create_kms_key =
    false means Google-managed encryption.
  EOT
  type        = string
  default     = null
}

variable "create_kms_key" {
  description = "Create a key ring and key in var.region and use it as the CMEK (ignored when kms_key_name is set)."
  type        = bool
  default     = false
}

variable "schedule" {
  description = <<-EOT
    Recurring retraining: Cloud Scheduler creates a Vertex AI PipelineJob from the pipeline template
    in Artifact Registry. Null disables it. `cron` may not carry a TZ= prefix; use time_zone.
    `template_tag` is the Artifact Registry tag to run (Cloud Build moves `latest` on each build).
    `parameter_values` are the pipeline's runtime parameters.
  EOT
  type = object({
    cron             = string
    time_zone        = optional(string, "Etc/UTC")
    template_name    = optional(string, "assemblenet-training")
    template_tag     = optional(string, "latest")
    parameter_values = optional(map(any), {})
    paused           = optional(bool, false)
  })
  default = null
}

variable "pipeline_runs_jobs_as_itself" {
  description = <<-EOT
    The compiled pipeline (pipeline/dag.py) currently starts the Dataflow workers and the TPU
    custom job as the pipeline service account itself ({{$.pipeline_service_account}}). True
    grants that account what those jobs need (dataflow.worker, actAs on itself). Set false once
    the pipeline passes the dedicated dataflow/trainer accounts (outputs service_accounts).
  EOT
  type        = bool
  default     = true
}
