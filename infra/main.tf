# Account facts and the names that several files share.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # Names are fixed here (not taken from the resources) so that the permissions
  # boundary and the deploy role can name them without a dependency cycle.
  lambda_function_name = "${var.name_prefix}-control-api"
  lambda_role_name     = "${var.name_prefix}-control-api"
  invoker_role_name    = "${var.name_prefix}-control-api-invoker"
  host_role_prefix     = "${var.name_prefix}-host-"
  # One permissions boundary per kind of workload role (iam-boundary.tf).
  host_boundary_name        = "${var.name_prefix}-host-boundary"
  control_api_boundary_name = "${var.name_prefix}-control-api-boundary"
  invoker_boundary_name     = "${var.name_prefix}-invoker-boundary"
  deploy_role_name          = "${var.name_prefix}-gha-deploy"
  prune_role_name           = "${var.name_prefix}-gha-ami-prune"
  schedule_rule_name        = "${var.name_prefix}-control-api-schedule"

  lambda_function_arn = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.lambda_function_name}"
  lambda_log_group    = "/aws/lambda/${local.lambda_function_name}"
  log_group_arn       = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.lambda_log_group}"
  invoker_role_arn    = "arn:${local.partition}:iam::${local.account_id}:role/${local.invoker_role_name}"
  bucket_arn          = "arn:${local.partition}:s3:::${var.bucket_name}"
  schedule_rule_arn   = "arn:${local.partition}:events:${local.region}:${local.account_id}:rule/${local.schedule_rule_name}"

  ssm_control_token_name      = "${var.ssm_parameter_prefix}/control-token"
  ssm_control_token_next_name = "${var.ssm_parameter_prefix}/control-token-next"
  ssm_github_token_name       = "${var.ssm_parameter_prefix}/github-token"
  ssm_parameter_arns = [
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.ssm_control_token_name}",
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.ssm_control_token_next_name}",
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.ssm_github_token_name}",
  ]
  # The chat webhook's parameter, when one is named: the operators create it (it holds
  # a URL that is a credential), this configuration only lets the function read it.
  chat_webhook_parameter_arns = var.chat_webhook_parameter == "" ? [] : [
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${var.chat_webhook_parameter}",
  ]

  # Built by scripts/build-lambda-zip; `bootstrap` at the root of the zip.
  lambda_zip = coalesce(var.lambda_zip, "${path.module}/../target/lambda/control-api.zip")
}
