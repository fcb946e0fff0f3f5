output "control_api_function_url" {
  description = "Function URL of the control API; callers sign with SigV4, service `lambda`."
  value       = aws_lambda_function_url.control_api.function_url
}

output "control_api_function_name" {
  description = "Name of the control API Lambda function."
  value       = aws_lambda_function.control_api.function_name
}

output "control_api_invoker_role_arn" {
  description = "Role the hosts assume (session name = their instance id) to call the control API."
  value       = aws_iam_role.invoker.arn
}

output "control_api_ssm_parameters" {
  description = "SecureString parameters to fill with `aws ssm put-parameter --overwrite` after the first apply."
  value = {
    control_token      = aws_ssm_parameter.control_token.name
    control_token_next = aws_ssm_parameter.control_token_next.name
    github_token       = aws_ssm_parameter.github_token.name
  }
}

output "instances" {
  description = "The fleet: registry id -> EC2 instance id, private and public IPv4 address, AMI."
  value = {
    for id, instance in aws_instance.host : id => {
      instance_id = instance.id
      private_ip  = instance.private_ip
      public_ip   = instance.public_ip
      ami         = instance.ami
    }
  }
}

output "fleet_bucket" {
  description = "The fleet bucket (bootstrap bundles, images, control API records)."
  value       = aws_s3_bucket.fleet.id
}

output "github_deploy_role_arn" {
  description = "Set as repository variable FLEET_DEPLOY_ROLE_ARN."
  value       = aws_iam_role.deploy.arn
}

output "github_ami_prune_role_arn" {
  description = "Set as repository variable FLEET_PRUNE_ROLE_ARN."
  value       = aws_iam_role.ami_prune.arn
}
