# Recurring retraining. Cloud Scheduler calls the Vertex AI REST API (pipelineJobs.create) with
# an OAuth token of the scheduler service account; the job runs the pipeline template stored in
# the KFP Artifact Registry repository as the pipeline service account.
# Why not google_vertex_ai_schedule: it appeared in provider 7.x (mid-2026) and was removed again
# for 8.0; Cloud Scheduler works on every provider version pinned here. `assemblenet pipeline
# schedule create` (a native Vertex AI schedule through the SDK) remains the alternative.

locals {
  kfp_host     = "https://${var.region}-kfp.pkg.dev/${var.project_id}/${google_artifact_registry_repository.kfp.repository_id}"
  pipeline_job = var.schedule == null ? null : merge(
    {
      displayName    = "${local.base}-scheduled"
      templateUri    = "${local.kfp_host}/${var.schedule.template_name}/${var.schedule.template_tag}"
      serviceAccount = google_service_account.sa["pipeline"].email
      labels         = merge(local.labels, { trigger = "cloud-scheduler" })
      runtimeConfig = {
        gcsOutputDirectory = "gs://${google_storage_bucket.pipeline_root.name}/runs"
        parameterValues    = var.schedule.parameter_values
      }
    },
    local.use_cmek ? { encryptionSpec = { kmsKeyName = local.kms_key_name } } : {},
  )
}

resource "google_cloud_scheduler_job" "retrain" {
  count            = var.schedule == null ? 0 : 1
  project          = var.project_id
  region           = var.region
  name             = "${local.base}-retrain"
  description      = "Starts the AssembleNet training pipeline (${var.env}) on a schedule."
  schedule         = var.schedule.cron
  time_zone        = var.schedule.time_zone
  paused           = var.schedule.paused
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://${var.region}-aiplatform.googleapis.com/v1/projects/${var.project_id}/locations/${var.region}/pipelineJobs"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(local.pipeline_job))

    oauth_token {
      service_account_email = google_service_account.sa["scheduler"].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_service.apis, google_service_account_iam_member.act_as]
}
