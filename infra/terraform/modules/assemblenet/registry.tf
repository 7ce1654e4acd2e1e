# Artifact Registry: a Docker repository for the three images and a Kubeflow Pipelines repository
# for compiled pipeline templates. Images are tagged by commit SHA and never overwritten.

resource "google_artifact_registry_repository" "docker" {
  #checkov:skip=CKV_GCP_84:CMEK is optional by design (var.kms_key_name / var.create_kms_key); the prod environment turns it on.
  project       = var.project_id
  location      = var.region
  repository_id = "${local.base}-images"
  description   = "AssembleNet container images (beam, trainer, pipeline), tagged by commit SHA."
  format        = "DOCKER"
  kms_key_name  = local.kms_key_name
  labels        = local.labels

  docker_config {
    # A commit-SHA tag always names the same bytes: compiled pipelines rely on it.
    immutable_tags = true
  }

  # Untagged layers left by rebuilds are removed after 30 days.
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.artifact_registry_agent]
}

resource "google_artifact_registry_repository" "kfp" {
  #checkov:skip=CKV_GCP_84:CMEK is optional by design (var.kms_key_name / var.create_kms_key); the prod environment turns it on.
  project       = var.project_id
  location      = var.region
  repository_id = "${local.base}-pipelines"
  description   = "Compiled AssembleNet Kubeflow pipeline templates."
  format        = "KFP"
  kms_key_name  = local.kms_key_name
  labels        = local.labels

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.artifact_registry_agent]
}
