# One service account per workload, each with only the roles it needs. Project-level roles are
# limited to "use the service" roles; storage and registry access is granted per bucket/repository.
# No primitive (owner/editor) or *.admin role anywhere: tests/infra/test_terraform.py enforces it.

locals {
  service_accounts = {
    # Runs the Vertex AI PipelineJob: creates custom jobs, launches Dataflow, registers models.
    pipeline = {
      display_name = "AssembleNet pipeline runs (${var.env})"
      project_roles = concat(
        ["roles/aiplatform.user", "roles/dataflow.developer", "roles/logging.logWriter"],
        # Dataflow workers running as this account need the worker role.
        var.pipeline_runs_jobs_as_itself ? ["roles/dataflow.worker"] : [],
      )
    }
    # Dataflow workers of the preprocessing job.
    dataflow = {
      display_name  = "AssembleNet Dataflow workers (${var.env})"
      project_roles = ["roles/dataflow.worker", "roles/logging.logWriter"]
    }
    # Vertex AI custom training/evaluation jobs on TPU.
    trainer = {
      display_name  = "AssembleNet training jobs (${var.env})"
      project_roles = ["roles/logging.logWriter"]
    }
    # Cloud Scheduler: starts the recurring PipelineJob.
    scheduler = {
      display_name  = "AssembleNet retraining schedule (${var.env})"
      project_roles = ["roles/aiplatform.user"]
    }
    # Cloud Build: builds/pushes images, compiles and uploads the pipeline template.
    build = {
      display_name  = "AssembleNet Cloud Build (${var.env})"
      project_roles = ["roles/logging.logWriter"]
    }
  }

  project_role_grants = merge([
    for sa, spec in local.service_accounts : {
      for role in spec.project_roles : "${sa}/${role}" => { sa = sa, role = role }
    }
  ]...)

  # bucket key -> role -> service accounts
  bucket_grants = {
    data = {
      "roles/storage.objectViewer" = ["pipeline", "trainer", "dataflow"]
    }
    pipeline_root = {
      "roles/storage.objectUser" = ["pipeline", "trainer", "dataflow"]
    }
    staging = {
      "roles/storage.objectUser" = ["pipeline", "dataflow", "build"]
    }
  }
  bucket_names = {
    data          = google_storage_bucket.data.name
    pipeline_root = google_storage_bucket.pipeline_root.name
    staging       = google_storage_bucket.staging.name
  }
  bucket_role_grants = merge(flatten([
    for bucket, roles in local.bucket_grants : [
      for role, sas in roles : {
        for sa in sas : "${bucket}/${role}/${sa}" => { bucket = bucket, role = role, sa = sa }
      }
    ]
  ])...)

  repository_grants = {
    docker = {
      "roles/artifactregistry.reader" = ["pipeline", "trainer", "dataflow"]
      "roles/artifactregistry.writer" = ["build"]
    }
    kfp = {
      "roles/artifactregistry.reader" = ["pipeline", "scheduler"]
      "roles/artifactregistry.writer" = ["build"]
    }
  }
  repository_ids = {
    docker = google_artifact_registry_repository.docker.name
    kfp    = google_artifact_registry_repository.kfp.name
  }
  repository_role_grants = merge(flatten([
    for repo, roles in local.repository_grants : [
      for role, sas in roles : {
        for sa in sas : "${repo}/${role}/${sa}" => { repo = repo, role = role, sa = sa }
      }
    ]
  ])...)

  # "caller may run jobs as target": who needs iam.serviceAccountUser on which account.
  act_as = merge(
    {
      "pipeline->dataflow"  = { caller = "pipeline", target = "dataflow" }
      "pipeline->trainer"   = { caller = "pipeline", target = "trainer" }
      "scheduler->pipeline" = { caller = "scheduler", target = "pipeline" }
    },
    # Launching a Dataflow job or custom job that runs as the caller's own account.
    var.pipeline_runs_jobs_as_itself ? {
      "pipeline->pipeline" = { caller = "pipeline", target = "pipeline" }
    } : {},
  )
}

resource "google_service_account" "sa" {
  for_each     = local.service_accounts
  project      = var.project_id
  account_id   = "${local.base}-${each.key}"
  display_name = each.value.display_name

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "project_roles" {
  for_each = local.project_role_grants
  project  = var.project_id
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.sa[each.value.sa].email}"
}

resource "google_storage_bucket_iam_member" "bucket_roles" {
  for_each = local.bucket_role_grants
  bucket   = local.bucket_names[each.value.bucket]
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.sa[each.value.sa].email}"
}

resource "google_artifact_registry_repository_iam_member" "repository_roles" {
  for_each   = local.repository_role_grants
  project    = var.project_id
  location   = var.region
  repository = local.repository_ids[each.value.repo]
  role       = each.value.role
  member     = "serviceAccount:${google_service_account.sa[each.value.sa].email}"
}

# Granted on the target service account itself, never project-wide.
resource "google_service_account_iam_member" "act_as" {
  for_each           = local.act_as
  service_account_id = google_service_account.sa[each.value.target].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.sa[each.value.caller].email}"
}
