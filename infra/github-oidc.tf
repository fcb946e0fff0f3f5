# GitHub Actions -> AWS without stored keys: one job of one workflow file, run from
# var.github_ref (optionally in a GitHub environment), exchanges its OIDC token for
# short-lived credentials of one of two roles, each with its own trust:
#
#   <prefix>-gha-deploy     the apply job of fleet-deploy.yml (var.github_workflow)
#   <prefix>-gha-ami-prune  the prune job of ami-prune.yml (var.github_prune_workflow)
#
# The OIDC subject names the workflow file and ref (job_workflow_ref): the repository
# must customize its subject claim to repo, context, job_workflow_ref
# (workflows/README.md, setup step 6).
#
# Admin-owned (applied with administrator credentials, never by CI): the OIDC
# provider, these two roles and their policies, the permissions boundaries
# (iam-boundary.tf), every role's trust policy and inline policy (hosts, control API,
# invoker), the fleet bucket's policy, lifecycle, versioning and encryption, the log
# group, the SSM parameters, the Function URL and its permission, the security group.
# The deploy role may change only what a deploy changes: the instances, their
# instance profiles, and the Lambda's code. It can read the rest (plan's refresh), so
# a plan that would change an admin-owned resource stops in the workflow, and its
# apply would fail with AccessDenied by design: CI can never widen its own rights or
# weaken what it is judged by. scripts/check-deploy-path pins this.

locals {
  github_oidc_url = "https://token.actions.githubusercontent.com"

  github_oidc_provider_arn = (var.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
  : data.aws_iam_openid_connect_provider.github[0].arn)

  # The OIDC subjects GitHub issues, with the subject claim customized to
  # [repo, context, job_workflow_ref]: the context is the branch, or the environment
  # if the job runs in one; job_workflow_ref pins the workflow file and the ref it was
  # run from either way. Exactly one subject per role.
  github_workflow_ref_prefix = "${var.github_repo}/.github/workflows"
  github_deploy_subject = join(":", [
    "repo:${var.github_repo}",
    var.github_environment == null ? "ref:refs/heads/${var.github_ref}" : "environment:${var.github_environment}",
    "job_workflow_ref:${local.github_workflow_ref_prefix}/${var.github_workflow}@refs/heads/${var.github_ref}",
  ])
  github_prune_subject = join(":", [
    "repo:${var.github_repo}",
    var.github_prune_environment == null ? "ref:refs/heads/${var.github_ref}" : "environment:${var.github_prune_environment}",
    "job_workflow_ref:${local.github_workflow_ref_prefix}/${var.github_prune_workflow}@refs/heads/${var.github_ref}",
  ])

  iam_arn_prefix = "arn:${local.partition}:iam::${local.account_id}"
  ec2_arn_prefix = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"

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

# Exact subjects, no wildcard: pull requests, forks, other branches, other
# repositories and every other workflow file get nothing.
data "aws_iam_policy_document" "github_assume_deploy" {
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

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [local.github_deploy_subject]
    }
  }
}

data "aws_iam_policy_document" "github_assume_prune" {
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

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [local.github_prune_subject]
    }
  }
}

# =============================================================================
# Deploy role: what `tofu plan` / `tofu apply` of this configuration needs
# =============================================================================

resource "aws_iam_role" "deploy" {
  name                 = local.deploy_role_name
  description          = "GitHub Actions (${var.github_repo}): tofu apply of the clawdinator fleet"
  assume_role_policy   = data.aws_iam_policy_document.github_assume_deploy.json
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

  # --- EC2: the hosts ------------------------------------------------------------

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
  # public NixOS image); subnet is the configured one; the security group is the
  # admin-owned fleet group (any group of the account can be named, but none created
  # or changed).
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

  # Tags given in the launch itself (TagSpecifications).
  statement {
    sid     = "TagOnLaunch"
    actions = ["ec2:CreateTags"]
    resources = [
      "${local.ec2_arn_prefix}:instance/*",
      "${local.ec2_arn_prefix}:volume/*",
      "${local.ec2_arn_prefix}:network-interface/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  # Change, stop and terminate only instances that carry the fleet tag.
  statement {
    sid = "ManageFleetInstances"
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
    ]
    resources = ["${local.ec2_arn_prefix}:instance/*"]

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

  # --- IAM: instance profiles of the (admin-owned) host roles ----------------------
  #
  # No iam:CreateRole, UpdateAssumeRolePolicy, PutRolePolicy, AttachRolePolicy,
  # PutRolePermissionsBoundary, DeleteRole or TagRole on any role: every role, its
  # trust policy, its policies and its tags are applied by an administrator. CI cannot
  # set a trust policy at all, so none can name a principal outside the account.

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

  # Host roles go into instance profiles and onto instances (AddRoleToInstanceProfile
  # and RunInstances both check PassRole), to EC2 only.
  statement {
    sid       = "PassHostRolesToEc2"
    actions   = ["iam:PassRole"]
    resources = ["${local.iam_arn_prefix}:role/${local.host_role_prefix}*"]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
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

  # --- Lambda: the control API's code, and nothing else ------------------------------
  #
  # No configuration (role, environment, URL, permissions, concurrency), no
  # lambda:InvokeFunction, no create or delete: those are admin-owned.
  statement {
    sid       = "UpdateControlApiCode"
    actions   = ["lambda:UpdateFunctionCode"]
    resources = [local.lambda_function_arn]
  }

  statement {
    sid       = "ReadControlApiFunction"
    actions   = ["lambda:Get*", "lambda:List*"]
    resources = [local.lambda_function_arn, "${local.lambda_function_arn}:*"]
  }

  # --- Read-only: log group, SSM parameters, fleet bucket, security group ----------

  statement {
    sid = "ReadControlApiLogGroup"
    actions = [
      "logs:ListTagsForResource",
      "logs:ListTagsLogGroup",
    ]
    resources = [local.log_group_arn, "${local.log_group_arn}:*"]
  }

  # GetParameter is there because the provider reads the parameter (with
  # decryption) on refresh. That lets CI read the secrets; it could anyway, since it
  # deploys the code of the function that reads them (SECURITY.md).
  statement {
    sid = "ReadControlApiParameters"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:ListTagsForResource",
    ]
    resources = local.ssm_parameter_arns
  }

  dynamic "statement" {
    for_each = var.ssm_kms_key_arn == null ? [] : [var.ssm_kms_key_arn]

    content {
      sid       = "ControlApiParameterKey"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }

  # Bucket-level reads only (policy, lifecycle, versioning, encryption, ...): on the
  # bucket ARN, where no object-level Get applies. ListBucket is what HeadBucket needs.
  statement {
    sid       = "ReadFleetBucketConfiguration"
    actions   = ["s3:Get*", "s3:ListBucket"]
    resources = [local.bucket_arn]
  }

  # The workflow's own audit record (workflows/README.md): create only. The
  # condition requires If-None-Match, so an existing record is never overwritten;
  # no DeleteObject, and the bucket policy denies deletes under audit/ anyway.
  statement {
    sid       = "CreateAuditRecords"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/audit/*"]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  # The roll (control-api roll) waits for each replaced host's heartbeat, and writes
  # the run's report, which S3 hands to the control API (infra/events.tf). A re-run of
  # the same request overwrites its report; nothing is deleted.
  statement {
    sid       = "ReadHeartbeats"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/heartbeats/*"]
  }

  # The workflow's "Check locks" step (control-api check-lock) reads the locks before
  # anything is replaced, so a run dispatched by hand is held by them too; read only.
  statement {
    sid       = "ReadLocks"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/locks/*"]
  }

  statement {
    sid       = "WriteReports"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/reports/*"]
  }

  # Read-only, for the plan's refresh of the control API's schedule (infra/events.tf).
  statement {
    sid       = "ReadControlApiSchedule"
    actions   = ["events:DescribeRule", "events:ListTargetsByRule", "events:ListTagsForResource"]
    resources = [local.schedule_rule_arn]
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]

    content {
      sid       = "AuditRecordEncryption"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
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
  assume_role_policy   = data.aws_iam_policy_document.github_assume_prune.json
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
