# AssembleNet pipeline platform for one environment: APIs, buckets, Artifact Registry, service
# accounts with least-privilege roles, optional CMEK, and the recurring retraining schedule.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  base      = "${var.name_prefix}-${var.env}"
  bucket_id = "${var.project_id}-${var.name_prefix}-${var.env}"
  labels    = merge({ app = var.name_prefix, env = var.env, managed-by = "terraform" }, var.labels)

  # The CMEK in use, if any: an existing key, a created one, or none.
  kms_key_name = var.kms_key_name != null ? var.kms_key_name : (
    var.create_kms_key ? google_kms_crypto_key.cmek[0].id : null
  )
  use_cmek = var.kms_key_name != null || var.create_kms_key

  apis = toset([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "dataflow.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each = local.apis
  project  = var.project_id
  service  = each.value
  # Other workloads in the project may use the same APIs.
  disable_on_destroy = false
}
