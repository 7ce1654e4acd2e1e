# dev environment. State lives in a GCS bucket created once by hand (see infra/README.md):
#   terraform init -backend-config="bucket=<PROJECT_ID>-tfstate"
terraform {
  required_version = ">= 1.9"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
  }
  backend "gcs" {
    prefix = "assemblenet/dev"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "assemblenet" {
  source = "../../modules/assemblenet"

  project_id = var.project_id
  region     = var.region
  env        = "dev"
  force_destroy_buckets        = true
  pipeline_root_retention_days = 30
  staging_retention_days       = 3
  create_kms_key               = false
  # Weekly smoke retraining on the small configuration.
  schedule = {
    cron             = "0 3 * * 1"
    template_tag     = "latest"
    parameter_values = {}
  }
}
