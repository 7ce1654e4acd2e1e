variable "project_id" {
  description = "GCP project for this environment."
  type        = string
}

variable "region" {
  description = "Region for every regional resource."
  type        = string
  default     = "us-central1"
}

variable "kms_key_name" {
  description = "Existing CMEK to use; null creates a dedicated key ring and key."
  type        = string
  default     = null
}
