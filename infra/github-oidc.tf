# GitHub Actions -> AWS without stored keys: the fleet repository's workflows on
# var.github_ref (and optionally in var.github_environment) exchange their OIDC
# token for short-lived credentials of one of two roles:
#
#   <prefix>-gha-deploy     tofu plan/apply of this configuration (fleet-deploy.yml)
#   <prefix>-gha-ami-prune  AMI retention only (ami-prune.yml)
#
# Admin-owned (the deploy role can read but not change them): the OIDC provider,
# these two roles and their policies, and the workload permissions boundary
# (iam-boundary.tf). Changing any of them needs an apply with administrator
# credentials; CI's apply of such a change fails with AccessDenied by design, so
# CI can never widen its own rights.

locals {
  github_oidc_url = "https://token.actions.githubusercontent.com"

  github_oidc_provider_arn = (var.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
  : data.aws_iam_openid_connect_provider.github[0].arn)

  # OIDC subjects GitHub issues for runs on the deploy branch, or in the environment.
  github_subjects = concat(
    ["repo:${var.github_repo}:ref:refs/heads/${var.github_ref}"],
    var.github_environment == null ? [] : ["repo:${var.github_repo}:environment:${var.github_environment}"],
  )

  iam_arn_prefix = "arn:${local.partition}:iam::${local.account_id}"
  ec2_arn_prefix = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"

  # The workload roles CI may create and change (always with the boundary).
  workload_role_arns = [
    "${local.iam_arn_prefix}:role/${local.host_role_prefix}*",
    "${local.iam_arn_prefix}:role/${local.lambda_role_name}",
    "${local.iam_arn_prefix}:role/${local.invoker_role_name}",
  ]
  fleet_tag_condition_key = "aws:ResourceTag/${var.fleet_tag_key}"
}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = local.github_oidc_url
  client_id_list = ["sts.amazonaws.com"]
  # No thumbprint_list: AWS validates GitHub's certificate against its own trust
  # store for this provider, and the provider no longer requires the argument.
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1

  url = local.github_oidc_url
}

data "aws_iam_policy_document" "github_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    # Exact subjects, no wildcard: pull requests, forks, other branches and other
    # repositories get nothing.
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = local.github_subjects
    }
  }
}

# =============================================================================
# Deploy role: what `tofu plan` / `tofu apply` of this configuration needs
# =============================================================================

resource "aws_iam_role" "deploy" {
  name                 = local.deploy_role_name
  description          = "GitHub Actions (${var.github_repo}): tofu apply of the clawdinator fleet"
  assume_role_policy   = data.aws_iam_policy_document.github_assume.json
  max_session_duration = 7200
}

data "aws_iam_policy_document" "deploy" {
  #checkov:skip=CKV_AWS_356:Only DescribeWithoutResourceScope has Resource "*". Its ec2:Describe* is read-only and is what the provider's refresh needs (a set that grows between provider versions); a few of the actions it expands to (DescribeInstanceAttribute and the like) could be scoped, see SECURITY.md.

  # --- State backend -----------------------------------------------------------

  statement {
    sid       = "StateBucketList"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.tf_state_bucket}"]
  }

  statement {
    sid     = "StateObject"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [
      "arn:${local.partition}:s3:::${var.tf_state_bucket}/${var.tf_state_key}",
      "arn:${local.partition}:s3:::${var.tf_state_bucket}/${var.tf_state_key}.tflock",
    ]
  }

  statement {
    sid       = "StateLock"
    actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
    resources = ["arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.tf_lock_table}"]
  }

  dynamic "statement" {
    for_each = var.tf_state_kms_key_arn == null ? [] : [var.tf_state_kms_key_arn]

    content {
      sid       = "StateEncryption"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }

  # --- Read-only calls without resource-level permissions ("*" unavoidable) -----

  statement {
    sid = "DescribeWithoutResourceScope"
    actions = [
      "ec2:Describe*",
      "iam:ListOpenIDConnectProviders",
      "logs:DescribeLogGroups",
      "ssm:DescribeParameters",
    ]
    resources = ["*"]
  }

  # --- EC2: hosts and their security group ---------------------------------------

  # Launch only instances that carry the fleet tag and require IMDSv2.
  statement {
    sid       = "LaunchFleetInstances"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn_prefix}:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${var.fleet_tag_key}"
      values   = [var.fleet_tag_value]
    }

    condition {
      test     = "StringEquals"
      variable = "ec2:MetadataHttpTokens"
      values   = ["required"]
    }
  }

  # The other resources a launch touches. Images are any (the first AMI may be a
  # public NixOS image); subnet is the configured one.
  statement {
    sid     = "LaunchSupportingResources"
    actions = ["ec2:RunInstances"]
    resources = [
      "arn:${local.partition}:ec2:${local.region}::image/*",
      "${local.ec2_arn_prefix}:subnet/${var.subnet_id}",
      "${local.ec2_arn_prefix}:security-group/*",
      "${local.ec2_arn_prefix}:network-interface/*",
      "${local.ec2_arn_prefix}:volume/*",
    ]
  }

  statement {
    sid       = "CreateFleetSecurityGroup"
    actions   = ["ec2:CreateSecurityGroup"]
    resources = ["${local.ec2_arn_prefix}:security-group/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${var.fleet_tag_key}"
      values   = [var.fleet_tag_value]
    }
  }

  statement {
    sid       = "CreateSecurityGroupInFleetVpc"
    actions   = ["ec2:CreateSecurityGroup"]
    resources = ["${local.ec2_arn_prefix}:vpc/${var.vpc_id}"]
  }

  # Tags given in the create call itself (TagSpecifications).
  statement {
    sid     = "TagOnCreate"
    actions = ["ec2:CreateTags"]
    resources = [
      "${local.ec2_arn_prefix}:instance/*",
      "${local.ec2_arn_prefix}:volume/*",
      "${local.ec2_arn_prefix}:network-interface/*",
      "${local.ec2_arn_prefix}:security-group/*",
      "${local.ec2_arn_prefix}:security-group-rule/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances", "CreateSecurityGroup", "AuthorizeSecurityGroupEgress", "AuthorizeSecurityGroupIngress"]
    }
  }

  # Change, stop and terminate only what carries the fleet tag.
  statement {
    sid = "ManageFleetEc2"
    actions = [
      "ec2:TerminateInstances",
      "ec2:StopInstances",
      "ec2:StartInstances",
      "ec2:ModifyInstanceAttribute",
      "ec2:ModifyInstanceMetadataOptions",
      "ec2:AssociateIamInstanceProfile",
      "ec2:ReplaceIamInstanceProfileAssociation",
      "ec2:DisassociateIamInstanceProfile",
      "ec2:CreateTags",
      "ec2:DeleteTags",
      "ec2:DeleteSecurityGroup",
      "ec2:AuthorizeSecurityGroupEgress",
      "ec2:RevokeSecurityGroupEgress",
      "ec2:AuthorizeSecurityGroupIngress",
      "ec2:RevokeSecurityGroupIngress",
      "ec2:ModifySecurityGroupRules",
      "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
    ]
    resources = [
      "${local.ec2_arn_prefix}:instance/*",
      "${local.ec2_arn_prefix}:security-group/*",
      "${local.ec2_arn_prefix}:security-group-rule/*",
    ]

    condition {
      test     = "StringEquals"
      variable = local.fleet_tag_condition_key
      values   = [var.fleet_tag_value]
    }
  }

  dynamic "statement" {
    for_each = var.ebs_kms_key_arn == null ? [] : [var.ebs_kms_key_arn]

    content {
      sid       = "EncryptRootVolumes"
      actions   = ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ec2.${local.region}.amazonaws.com"]
      }
    }
  }

  # --- IAM: workload roles, always inside the boundary ---------------------------

  statement {
    sid = "WorkloadRolesWithBoundary"
    actions = [
      "iam:CreateRole",
      "iam:PutRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:AttachRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PutRolePermissionsBoundary",
    ]
    resources = local.workload_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.workload_boundary.arn]
    }
  }

  statement {
    sid = "WorkloadRoles"
    actions = [
      "iam:DeleteRole",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
    ]
    resources = local.workload_role_arns
  }

  statement {
    sid = "HostInstanceProfiles"
    actions = [
      "iam:CreateInstanceProfile",
      "iam:DeleteInstanceProfile",
      "iam:AddRoleToInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile",
      "iam:TagInstanceProfile",
      "iam:UntagInstanceProfile",
    ]
    resources = ["${local.iam_arn_prefix}:instance-profile/${local.host_role_prefix}*"]
  }

  # Host roles go into instance profiles (AddRoleToInstanceProfile and RunInstances
  # both check PassRole).
  statement {
    sid       = "PassHostRoles"
    actions   = ["iam:PassRole"]
    resources = ["${local.iam_arn_prefix}:role/${local.host_role_prefix}*"]
  }

  statement {
    sid       = "PassControlApiRole"
    actions   = ["iam:PassRole"]
    resources = ["${local.iam_arn_prefix}:role/${local.lambda_role_name}"]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com"]
    }
  }

  # Read everything this configuration owns in IAM, including the admin-owned parts
  # (refresh must see them).
  statement {
    sid     = "ReadOwnIam"
    actions = ["iam:Get*", "iam:List*"]
    resources = [
      "${local.iam_arn_prefix}:role/${var.name_prefix}-*",
      "${local.iam_arn_prefix}:instance-profile/${var.name_prefix}-*",
      "${local.iam_arn_prefix}:policy/${var.name_prefix}-*",
      "${local.iam_arn_prefix}:oidc-provider/token.actions.githubusercontent.com",
    ]
  }

  # --- Lambda: the control API only ----------------------------------------------

  statement {
    sid = "ManageControlApiFunction"
    actions = [
      "lambda:CreateFunction",
      "lambda:DeleteFunction",
      "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration",
      "lambda:PutFunctionConcurrency",
      "lambda:DeleteFunctionConcurrency",
      "lambda:DeleteFunctionUrlConfig",
      "lambda:RemovePermission",
      "lambda:TagResource",
      "lambda:UntagResource",
      "lambda:Get*",
      "lambda:List*",
    ]
    resources = [local.lambda_function_arn, "${local.lambda_function_arn}:*"]
  }

  # The Function URL can only ever be IAM-authenticated, whatever the config says.
  statement {
    sid       = "ControlApiUrlIamAuthOnly"
    actions   = ["lambda:CreateFunctionUrlConfig", "lambda:UpdateFunctionUrlConfig"]
    resources = [local.lambda_function_arn]

    condition {
      test     = "StringEquals"
      variable = "lambda:FunctionUrlAuthType"
      values   = ["AWS_IAM"]
    }
  }

  # Resource-policy grants only to the invoker role.
  statement {
    sid       = "ControlApiPermissionForInvokerOnly"
    actions   = ["lambda:AddPermission"]
    resources = [local.lambda_function_arn]

    condition {
      test     = "StringEquals"
      variable = "lambda:Principal"
      values   = [local.invoker_role_arn]
    }
  }

  # --- Logs, SSM parameters, fleet bucket ----------------------------------------

  statement {
    sid = "ManageControlApiLogGroup"
    actions = [
      "logs:CreateLogGroup",
      "logs:DeleteLogGroup",
      "logs:PutRetentionPolicy",
      "logs:DeleteRetentionPolicy",
      "logs:AssociateKmsKey",
      "logs:DisassociateKmsKey",
      "logs:TagResource",
      "logs:UntagResource",
      "logs:ListTagsForResource",
      "logs:TagLogGroup",
      "logs:UntagLogGroup",
      "logs:ListTagsLogGroup",
    ]
    resources = [local.log_group_arn, "${local.log_group_arn}:*"]
  }

  # GetParameter is there because the provider reads the parameter (with
  # decryption) on refresh. That lets CI read the two secrets; it could anyway,
  # since it deploys the code of the function that reads them.
  statement {
    sid = "ManageControlApiParameters"
    actions = [
      "ssm:PutParameter",
      "ssm:DeleteParameter",
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:AddTagsToResource",
      "ssm:RemoveTagsFromResource",
      "ssm:ListTagsForResource",
    ]
    resources = local.ssm_parameter_arns
  }

  dynamic "statement" {
    for_each = var.ssm_kms_key_arn == null ? [] : [var.ssm_kms_key_arn]

    content {
      sid       = "ControlApiParameterKey"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }

  # Bucket configuration only; no object access, and no s3:DeleteBucket.
  statement {
    sid = "ManageFleetBucketConfiguration"
    actions = [
      "s3:CreateBucket",
      "s3:PutBucket*",
      "s3:PutLifecycleConfiguration",
      "s3:PutEncryptionConfiguration",
      "s3:DeleteBucketPolicy",
      "s3:Get*",
      "s3:List*",
    ]
    resources = [local.bucket_arn]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "tofu-apply-fleet"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

# =============================================================================
# AMI prune role: deregister fleet AMIs and delete their snapshots, nothing else
# =============================================================================

resource "aws_iam_role" "ami_prune" {
  name                 = local.prune_role_name
  description          = "GitHub Actions (${var.github_repo}): AMI retention of the clawdinator fleet"
  assume_role_policy   = data.aws_iam_policy_document.github_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "ami_prune" {
  # Describe* calls have no resource-level permissions.
  statement {
    sid       = "DescribeImages"
    actions   = ["ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DescribeInstances"]
    resources = ["*"]
  }

  # Only images and snapshots with the image tag. The image pipeline must tag the
  # snapshots too, or their deletion is refused (and they stay, costing).
  statement {
    sid     = "DeleteTaggedImages"
    actions = ["ec2:DeregisterImage", "ec2:DeleteSnapshot"]
    resources = [
      "arn:${local.partition}:ec2:${local.region}::image/*",
      "arn:${local.partition}:ec2:${local.region}::snapshot/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${var.image_tag_key}"
      values   = [var.image_tag_value]
    }
  }
}

resource "aws_iam_role_policy" "ami_prune" {
  name   = "prune-fleet-amis"
  role   = aws_iam_role.ami_prune.id
  policy = data.aws_iam_policy_document.ami_prune.json
}
