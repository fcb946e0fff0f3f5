# Permissions boundaries of the workload roles, one per kind: the hosts, the control
# API, the invoker. Each lists the most that kind of role may ever do, whatever its
# inline policy says; a role's effective rights are the intersection.
#
# Admin-owned, like the roles themselves (github-oidc.tf): CI can read these
# policies and the roles but change none of them. The boundaries are the second
# wall: if a role's inline policy were ever widened, a host still reads only its
# own bootstrap bundle, only the control API reads the tokens, and only the invoker
# may invoke the function, and only this function.
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

  # Listing of the prefixes it reads; no bootstrap bundle's content.
  statement {
    sid       = "ListFleetPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["bootstrap/*", "audit/*", "idempotency/*", "heartbeats/*", "reports/*", "chat/*", "locks/*", "leases/*", "queue/*", "deployed/*"]
    }
  }

  statement {
    sid     = "StateRecords"
    actions = ["s3:GetObject", "s3:PutObject"]
    resources = [
      "${local.bucket_arn}/idempotency/*",
      "${local.bucket_arn}/audit/*",
      "${local.bucket_arn}/heartbeats/*",
    ]
  }

  statement {
    sid       = "ReadReports"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/reports/*"]
  }

  statement {
    sid     = "Coordination"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [
      "${local.bucket_arn}/locks/*",
      "${local.bucket_arn}/leases/*",
      "${local.bucket_arn}/queue/*",
    ]
  }

  statement {
    sid       = "DeployedRevisions"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.bucket_arn}/deployed/*"]
  }

  statement {
    sid       = "CreateChatClaims"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/chat/*"]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid       = "ControlApiSecrets"
    actions   = ["ssm:GetParameters"]
    resources = concat(local.ssm_parameter_arns, local.chat_webhook_parameter_arns)
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

  # A Function URL call also needs lambda:InvokeFunction (AWS, since October 2025),
  # and the seed's client invokes the function directly: both on this function only,
  # never a version, an alias or any other function. A direct payload is checked like
  # a request (its control_token), and one shaped like an S3 or schedule event can
  # only make the function read what is already in the bucket (README, "Events").
  statement {
    sid       = "InvokeThisFunctionOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.lambda_function_arn]
  }
}

resource "aws_iam_policy" "invoker_boundary" {
  name        = local.invoker_boundary_name
  description = "Permissions boundary of the clawdinator control API invoker role: the control API function only"
  policy      = data.aws_iam_policy_document.invoker_boundary.json
}
