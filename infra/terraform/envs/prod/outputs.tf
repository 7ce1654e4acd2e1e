output "buckets" {
  description = "Bucket names by role."
  value       = module.assemblenet.buckets
}

output "image_registry" {
  description = "Docker registry path for --image-registry / Cloud Build _REGISTRY."
  value       = module.assemblenet.image_registry
}

output "kfp_host" {
  description = "Kubeflow template registry host."
  value       = module.assemblenet.kfp_host
}

output "service_accounts" {
  description = "Service account emails by workload."
  value       = module.assemblenet.service_accounts
}

output "kms_key_name" {
  description = "CMEK in use, if any."
  value       = module.assemblenet.kms_key_name
}

output "pipeline_settings" {
  description = "Paste into pipeline/configs/<env>.yaml (or pass as flags)."
  value       = module.assemblenet.pipeline_settings
}
