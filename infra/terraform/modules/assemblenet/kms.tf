# Optional customer-managed encryption key. The Google service agents that encrypt on our behalf
# (Cloud Storage, Artifact Registry, Vertex AI) get encrypt/decrypt on that key only.

resource "google_kms_key_ring" "cmek" {
  count    = var.kms_key_name == null && var.create_kms_key ? 1 : 0
  project  = var.project_id
  name     = "${local.base}-keyring"
  location = var.region

  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "cmek" {
  count           = var.kms_key_name == null && var.create_kms_key ? 1 : 0
  name            = "${local.base}-cmek"
  key_ring        = google_kms_key_ring.cmek[0].id
  rotation_period = "7776000s" # 90 days
  labels          = local.labels

  lifecycle {
    # Destroying the key makes every object encrypted with it unreadable.
    prevent_destroy = true
  }
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

locals {
  aiplatform_agent        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
  artifact_registry_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}

resource "google_kms_crypto_key_iam_member" "storage_agent" {
  count         = local.use_cmek ? 1 : 0
  crypto_key_id = local.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_kms_crypto_key_iam_member" "artifact_registry_agent" {
  count         = local.use_cmek ? 1 : 0
  crypto_key_id = local.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.artifact_registry_agent
}

resource "google_kms_crypto_key_iam_member" "aiplatform_agent" {
  count         = local.use_cmek ? 1 : 0
  crypto_key_id = local.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.aiplatform_agent
}
