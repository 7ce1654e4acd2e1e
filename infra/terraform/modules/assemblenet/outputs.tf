output "buckets" {
  description = "Bucket names by role."
  value = {
    data          = google_storage_bucket.data.name
    pipeline_root = google_storage_bucket.pipeline_root.name
    staging       = google_storage_bucket.staging.name
    access_logs   = google_storage_bucket.access_logs.name
  }
}

output "image_registry" {
  description = "Docker registry path: pass as --image-registry / _REGISTRY; images are <registry>/assemblenet-<key>:<sha>."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.docker.repository_id}"
}

output "kfp_host" {
  description = "Kubeflow template registry host for `assemblenet pipeline upload-template`."
  value       = local.kfp_host
}

output "service_accounts" {
  description = "Service account emails by workload."
  value       = { for key, sa in google_service_account.sa : key => sa.email }
}

output "kms_key_name" {
  description = "CMEK in use, or null for Google-managed encryption."
  value       = local.kms_key_name
}

output "schedule_job" {
  description = "Cloud Scheduler job that starts the retraining pipeline, if enabled."
  value       = one(google_cloud_scheduler_job.retrain[*].id)
}

output "pipeline_settings" {
  description = "Values for pipeline/configs/<env>.yaml (keys of pipeline.settings), matching what this module created."
  value = {
    project           = var.project_id
    region            = var.region
    pipeline_root     = "gs://${google_storage_bucket.pipeline_root.name}/root"
    staging_bucket    = "gs://${google_storage_bucket.staging.name}"
    service_account   = google_service_account.sa["pipeline"].email
    image_registry    = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.docker.repository_id}"
    template_registry = local.kfp_host
    kms_key           = local.kms_key_name
  }
}
