# Permissions boundaries of the workload roles, one per kind: the hosts, the control
# API, the invoker. Each lists the most that kind of role may ever do, whatever its
# inline policy says; a role's effective rights are the intersection.
#
# Admin-owned, like the roles themselves (github-oidc.tf): CI can read these
# policies and the roles but change none of them. The boundaries are the second
# wall: if a role's inline policy were ever widened, a host still reads only its
# own bootstrap bundle, only the control API reads the tokens, and nothing may
# invoke the function except through its Function URL.
#
# ARNs are built from names (main.tf) so that no resource here depends on a role that
# in turn depends on one of these policies.

locals {
  # Host roles carry this tag (instances.tf), set by the administrator's apply; the
  # host boundary scopes the bucket to bootstrap/<that id>/ through it.
  host_id_tag_key = "clawdinator-instance"

  kms_key_arns_any = compact([
    "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*",
    var.bucket_kms_key_arn,
    var.ssm_kms_key_arn,
  ])
}

# --- Hosts ------------------------------------------------------------------------

data "aws_iam_policy_document" "host_boundary" {
  # Only the host's own bundle: the prefix comes from the role's own tag, which only
  # an administrator can set.
  statement {
    sid       = "OwnBootstrapBundle"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/bootstrap/$${aws:PrincipalTag/${local.host_id_tag_key}}/*"]
  }

  statement {
    sid       = "ListOwnBootstrapPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values = [
        "bootstrap/$${aws:PrincipalTag/${local.host_id_tag_key}}/",
        "bootstrap/$${aws:PrincipalTag/${local.host_id_tag_key}}/*",
      ]
    }
  }

  statement {
    sid       = "AssumeInvoker"
    actions   = ["sts:AssumeRole"]
    resources = [local.invoker_role_arn]
  }

  statement {
    sid       = "DecryptThroughS3"
    actions   = ["kms:Decrypt"]
    resources = local.kms_key_arns_any

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "host_boundary" {
  name        = local.host_boundary_name
  description = "Permissions boundary of the clawdinator host roles: own bootstrap bundle, assume the invoker"
  policy      = data.aws_iam_policy_document.host_boundary.json
}

# --- Control API --------------------------------------------------------------------

data "aws_iam_policy_document" "control_api_boundary" {
  # Describe* calls have no resource-level permissions.
  statement {
    sid       = "DescribeFleet"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeImages"]
    resources = ["*"]
  }

  # Listing of the three prefixes it reads; no bootstrap bundle's content.
  statement {
    sid       = "ListFleetPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["bootstrap/*", "audit/*", "idempotency/*"]
    }
  }

  statement {
    sid     = "StateRecords"
    actions = ["s3:GetObject", "s3:PutObject"]
    resources = [
      "${local.bucket_arn}/idempotency/*",
      "${local.bucket_arn}/audit/*",
    ]
  }

  statement {
    sid       = "ControlApiSecrets"
    actions   = ["ssm:GetParameters"]
    resources = local.ssm_parameter_arns
  }

  # Key use only through SSM or S3, never direct.
  statement {
    sid       = "KeyUseThroughServices"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns_any

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
}

resource "aws_iam_policy" "control_api_boundary" {
  name        = local.control_api_boundary_name
  description = "Permissions boundary of the clawdinator control API role"
  policy      = data.aws_iam_policy_document.control_api_boundary.json
}

# --- Invoker ------------------------------------------------------------------------

data "aws_iam_policy_document" "invoker_boundary" {
  statement {
    sid       = "InvokeControlApiUrl"
    actions   = ["lambda:InvokeFunctionUrl"]
    resources = [local.lambda_function_arn]

    condition {
      test     = "StringEquals"
      variable = "lambda:FunctionUrlAuthType"
      values   = ["AWS_IAM"]
    }
  }

  # A Function URL call also needs lambda:InvokeFunction (AWS, since October 2025).
  # The function's resource policy grants it to the invoker role ARN, and a grant to
  # a role ARN is still capped by the role's boundary, so it is here too, but only for
  # calls that come through the Function URL: never a direct Invoke with a forged
  # event. (The same condition the resource policy's invoked_via_function_url sets.)
  statement {
    sid       = "InvokeOnlyThroughUrl"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.lambda_function_arn]

    condition {
      test     = "Bool"
      variable = "lambda:InvokedViaFunctionUrl"
      values   = ["true"]
    }
  }
}

resource "aws_iam_policy" "invoker_boundary" {
  name        = local.invoker_boundary_name
  description = "Permissions boundary of the clawdinator control API invoker role: the Function URL only"
  policy      = data.aws_iam_policy_document.invoker_boundary.json
}
