# Permissions boundary of every role this configuration creates for workloads (the
# hosts, the control API, the invoker). The CI deploy role may create and change
# those roles only with this boundary attached (github-oidc.tf), so whatever policy
# CI writes onto them, their effective rights never exceed this list.
#
# Admin-owned: the deploy role can read this policy but not change it. ARNs are
# built from names (main.tf) so that no resource here depends on a role that in
# turn depends on this policy.

data "aws_iam_policy_document" "workload_boundary" {
  statement {
    sid     = "FleetBucket"
    actions = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]
  }

  # Describe* calls have no resource-level permissions.
  statement {
    sid       = "DescribeFleet"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeImages"]
    resources = ["*"]
  }

  # One GetParameters call reads both tokens; nothing else is needed.
  statement {
    sid       = "ControlApiSecrets"
    actions   = ["ssm:GetParameters"]
    resources = local.ssm_parameter_arns
  }

  # Key use only through SSM or S3, never direct.
  statement {
    sid     = "KeyUseThroughServices"
    actions = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = compact([
      "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*",
      var.bucket_kms_key_arn,
      var.ssm_kms_key_arn,
    ])

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com", "s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "ControlApiLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.log_group_arn}:*"]
  }

  statement {
    sid       = "InvokeControlApiUrl"
    actions   = ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
    resources = [local.lambda_function_arn]
  }

  statement {
    sid       = "AssumeInvoker"
    actions   = ["sts:AssumeRole"]
    resources = [local.invoker_role_arn]
  }
}

resource "aws_iam_policy" "workload_boundary" {
  name        = local.boundary_policy_name
  description = "Permissions boundary of the clawdinator workload roles (hosts, control API, invoker)"
  policy      = data.aws_iam_policy_document.workload_boundary.json
}
