# Buckets. All: uniform bucket-level access, public access prevention enforced, access logs to
# the log bucket, optional CMEK. Data and pipeline-root hold things that must not be lost
# (preprocessed TFRecords; trained models the Model Registry points at), so they are versioned.
# Staging holds only temporary files (Dataflow staging/temp, Cloud Build sources) and expires them.

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink itself; logging it into itself would loop.
  #checkov:skip=CKV_GCP_78:Access logs are append-only records that expire; versioning adds nothing.
  name                        = "${local.bucket_id}-logs"
  project                     = var.project_id
  location                    = var.region
  force_destroy               = var.force_destroy_buckets
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = local.use_cmek ? [local.kms_key_name] : []
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.storage_agent]
}

resource "google_storage_bucket" "data" {
  name                        = "${local.bucket_id}-data"
  project                     = var.project_id
  location                    = var.region
  force_destroy               = var.force_destroy_buckets
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # Keep overwritten or deleted versions for a while, then reclaim the space.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  dynamic "encryption" {
    for_each = local.use_cmek ? [local.kms_key_name] : []
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.storage_agent]
}

resource "google_storage_bucket" "pipeline_root" {
  name                        = "${local.bucket_id}-pipeline-root"
  project                     = var.project_id
  location                    = var.region
  force_destroy               = var.force_destroy_buckets
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Registered models point into this bucket, so live objects expire only if asked (0 = never).
  dynamic "lifecycle_rule" {
    for_each = var.pipeline_root_retention_days > 0 ? [var.pipeline_root_retention_days] : []
    content {
      condition {
        age        = lifecycle_rule.value
        with_state = "LIVE"
      }
      action {
        type = "Delete"
      }
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  dynamic "encryption" {
    for_each = local.use_cmek ? [local.kms_key_name] : []
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.storage_agent]
}

resource "google_storage_bucket" "staging" {
  #checkov:skip=CKV_GCP_78:Temporary Dataflow/Cloud Build files that expire after days; versioning would only keep garbage.
  name                        = "${local.bucket_id}-staging"
  project                     = var.project_id
  location                    = var.region
  force_destroy               = var.force_destroy_buckets
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  lifecycle_rule {
    condition {
      age = var.staging_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Dataflow and Cloud Build leave partial uploads behind when a job is cancelled.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  dynamic "encryption" {
    for_each = local.use_cmek ? [local.kms_key_name] : []
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.storage_agent]
}
