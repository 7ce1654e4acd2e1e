# prod environment. State lives in a GCS bucket created once by hand (see infra/README.md):
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
    prefix = "assemblenet/prod"
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
  env        = "prod"
  force_destroy_buckets        = false
  pipeline_root_retention_days = 0 # registered models point here: keep
  staging_retention_days       = 7
  create_kms_key               = var.kms_key_name == null
  kms_key_name                 = var.kms_key_name
  schedule = {
    cron             = "0 2 1 * *"
    template_tag     = "latest"
    parameter_values = {}
  }
}
