terraform {
  required_version = ">= 1.9"
  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.x: every resource used here is stable (GA) in this major version.
      version = "~> 7.0"
    }
  }
}
