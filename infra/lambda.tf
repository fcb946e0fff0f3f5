# The control API: a Rust Lambda (binary `bootstrap`, provided.al2023, arm64) behind a
# Function URL with IAM auth. It dispatches workflows/fleet-deploy.yml.

# --- Secrets: SSM SecureString parameters -------------------------------------
#
# Only the parameter NAMES reach the function (environment below); it reads the
# values (one GetParameters) on the first request of each sandbox. The values are
# never in code, in the plan or in the state:
#
#   * created with a placeholder through the write-only `value_wo`; write-only
#     attributes are never stored in the state or the plan;
#   * operators then put the real value out of band:
#       aws ssm put-parameter --overwrite --type SecureString \
#         --name /clawdinator/control-api/github-token --value "$TOKEN"
#   * tofu never writes it back: `value_wo_version` stays 1, so no later plan
#     changes the parameter. Bump it only to reset the placeholder on purpose.
#
# (`value` + ignore_changes = [value] would not do: the provider reads the
# parameter with decryption on every refresh and would copy the real secret into
# the state.)

resource "aws_ssm_parameter" "control_token" {
  name        = local.ssm_control_token_name
  description = "Bearer token the fleet bots present to the control API. Set with aws ssm put-parameter --overwrite."
  type        = "SecureString"
  key_id      = var.ssm_kms_key_arn

  value_wo         = "UNSET-put-the-real-value-with-aws-ssm-put-parameter"
  value_wo_version = 1
}

# The shared token's successor during a rotation. Between rotations it holds the
# placeholder, which the control API reads as "no second token" (see README, Rotation).
resource "aws_ssm_parameter" "control_token_next" {
  name        = local.ssm_control_token_next_name
  description = "Next bearer token during a rotation, accepted beside control-token; the UNSET- placeholder when no rotation is under way."
  type        = "SecureString"
  key_id      = var.ssm_kms_key_arn

  value_wo         = "UNSET-no-rotation-under-way"
  value_wo_version = 1
}

resource "aws_ssm_parameter" "github_token" {
  name        = local.ssm_github_token_name
  description = "GitHub token (actions:write on ${var.github_repo}) the control API dispatches workflows with. Set with aws ssm put-parameter --overwrite."
  type        = "SecureString"
  key_id      = var.ssm_kms_key_arn

  value_wo         = "UNSET-put-the-real-value-with-aws-ssm-put-parameter"
  value_wo_version = 1
}

locals {
  # The only parameters the function may read and decrypt: its tokens, and the chat
  # webhook's when one is named.
  own_secret_arns = concat([
    aws_ssm_parameter.control_token.arn,
    aws_ssm_parameter.control_token_next.arn,
    aws_ssm_parameter.github_token.arn,
  ], local.chat_webhook_parameter_arns)
}

# --- Logs ---------------------------------------------------------------------

# Created here (not by Lambda on first write) so that it has a retention and the
# function's role needs no logs:CreateLogGroup. The control API's audit lines (one
# per request) live only here, hence a year by default (log_retention_days).
resource "aws_cloudwatch_log_group" "control_api" {
  name              = local.lambda_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

# --- Execution role -----------------------------------------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "control_api" {
  name                 = local.lambda_role_name
  description          = "Execution role of the clawdinator control API Lambda"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = aws_iam_policy.control_api_boundary.arn
}

data "aws_iam_policy_document" "control_api" {
  # Describe* calls have no resource-level permissions: "*" is the only valid
  # resource. They are read-only; the function filters by the fleet tags itself.
  statement {
    sid       = "DescribeFleet"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeImages"]
    resources = ["*"]
  }

  # Bootstrap bundles (pre-deploy check), the audit trail (`action: audit` lists a
  # day's prefix), idempotency records, heartbeats, reports, chat claims, deployed
  # revisions: with
  # ListBucket on a prefix, a GetObject of a missing key there is 404 NoSuchKey, not
  # 403, which the code needs to tell "no record" from "no access".
  statement {
    sid       = "ListFleetPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.fleet.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["bootstrap/*", "audit/*", "idempotency/*", "heartbeats/*", "reports/*", "chat/*", "locks/*", "leases/*", "queue/*", "deployed/*"]
    }
  }

  # Idempotency records move pending -> done/released only by conditional writes
  # (If-None-Match: *, If-Match: <etag>); audit records are written once per decision;
  # each host's latest heartbeat is overwritten by the next.
  # No DeleteObject: records expire through the bucket's lifecycle rules.
  statement {
    sid     = "StateRecords"
    actions = ["s3:GetObject", "s3:PutObject"]
    resources = [
      "${aws_s3_bucket.fleet.arn}/idempotency/*",
      "${aws_s3_bucket.fleet.arn}/audit/*",
      "${aws_s3_bucket.fleet.arn}/heartbeats/*",
    ]
  }

  # Reports are the deploy workflow's (control-api roll); the function only reads them
  # (`run`, `runs`, the chat message).
  statement {
    sid       = "ReadReports"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.fleet.arn}/reports/*"]
  }

  # One chat message per report: its claim is created with If-None-Match: *, and the
  # condition makes every write there create-only.
  # Locks, the deploy lease and the queue: each object is created with If-None-Match: *
  # or replaced with If-Match: <etag>, and deleted when the lock is released, the
  # lease ends (both deletes with If-Match: <etag>, which S3 also authorizes against
  # s3:GetObject) or the queue entry is dispatched, dropped or cancelled.
  statement {
    sid     = "Coordination"
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [
      "${aws_s3_bucket.fleet.arn}/locks/*",
      "${aws_s3_bucket.fleet.arn}/leases/*",
      "${aws_s3_bucket.fleet.arn}/queue/*",
    ]
  }

  # Each host's deployed revision, one object (deployed/revisions.json) rewritten when
  # a report lands, only by conditional writes (If-None-Match: *, If-Match: <etag>);
  # status reads it. Never deleted: old versions expire (storage.tf).
  statement {
    sid       = "DeployedRevisions"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.fleet.arn}/deployed/*"]
  }

  statement {
    sid       = "CreateChatClaims"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.fleet.arn}/chat/*"]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  # One GetParameters call reads the three tokens (and, on a report's event, another
  # the chat webhook's URL); nothing else is needed.
  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["ssm:GetParameters"]
    resources = local.own_secret_arns
  }

  # SecureString decryption, only through SSM and only for these parameters
  # (SSM puts the parameter ARN into the encryption context).
  statement {
    sid       = "DecryptOwnSecrets"
    actions   = ["kms:Decrypt"]
    resources = [coalesce(var.ssm_kms_key_arn, "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*")]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:PARAMETER_ARN"
      values   = local.own_secret_arns
    }
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]

    content {
      sid       = "BucketEncryption"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.control_api.arn}:*"]
  }
}

resource "aws_iam_role_policy" "control_api" {
  name   = "control-api"
  role   = aws_iam_role.control_api.id
  policy = data.aws_iam_policy_document.control_api.json
}

# --- Function -----------------------------------------------------------------

resource "aws_lambda_function" "control_api" {
  # Checkov findings that do not apply here (reasons also in SECURITY.md):
  #checkov:skip=CKV_AWS_116:Requests come synchronously (Function URL, the seed's direct invoke), whose caller sees every error. The asynchronous ones (S3 report events, the 5-minute schedule) are retried twice by Lambda; a lost report event loses one chat message (the report stays in the bucket and run shows it), a lost schedule event is followed by the next in 5 minutes. A DLQ would be a queue nobody reads.
  #checkov:skip=CKV_AWS_117:Nothing to reach inside a VPC; the function calls only public AWS APIs and api.github.com, and a VPC would need a NAT gateway or endpoints just to get back out.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets, only SSM parameter names and public settings; the tokens are SecureString parameters read at cold start. Lambda encrypts it at rest with its own key.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signing step in the deploy workflow; today the code changes only through the deploy role (OIDC, one branch), which builds the zip from the repository in the same run. A possible follow-up.
  #checkov:skip=CKV_AWS_50:The Rust code sends no X-Ray segments; request_id in every audit log line and the run name is the trace. Active tracing would widen the role and boundary by xray:Put* for nothing.
  function_name = local.lambda_function_name
  description   = "clawdinator fleet control API"
  role          = aws_iam_role.control_api.arn

  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"

  # Build it first: scripts/build-lambda-zip aarch64-unknown-linux-gnu
  filename         = local.lambda_zip
  source_code_hash = filebase64sha256(local.lambda_zip)

  timeout     = 30
  memory_size = 128

  # Caps parallel deploy requests (and a runaway caller's cost). Must leave the
  # account's unreserved pool at 10 or more; -1 disables the reservation.
  reserved_concurrent_executions = var.lambda_reserved_concurrency

  environment {
    variables = merge({
      # Names of SSM parameters, not secrets.
      CONTROL_API_TOKEN_PARAMETER      = aws_ssm_parameter.control_token.name
      CONTROL_API_TOKEN_NEXT_PARAMETER = aws_ssm_parameter.control_token_next.name
      GITHUB_TOKEN_PARAMETER           = aws_ssm_parameter.github_token.name
      # Each host assumes the invoker role with its instance id as the session name,
      # so the verified caller ARN tells the control API which bot is calling.
      CONTROL_API_IAM_PRINCIPALS = jsonencode({
        "arn:aws:sts::${local.account_id}:assumed-role/${local.invoker_role_name}/" = "session"
      })

      GITHUB_REPO           = var.github_repo
      GITHUB_WORKFLOW       = var.github_workflow
      GITHUB_REF            = var.github_ref
      FLEET_TAG_KEY         = var.fleet_tag_key
      FLEET_TAG_VALUE       = var.fleet_tag_value
      FLEET_IMAGE_TAG_KEY   = var.image_tag_key
      FLEET_IMAGE_TAG_VALUE = var.image_tag_value
      # One bucket serves both: bootstrap/ bundles, and idempotency/ + audit/ records.
      FLEET_BOOTSTRAP_BUCKET = aws_s3_bucket.fleet.id
      FLEET_STATE_BUCKET     = aws_s3_bucket.fleet.id
      RUST_LOG               = var.rust_log
      # No chat messages unless the operators named the webhook's parameter.
    }, var.chat_webhook_parameter == "" ? {} : { FLEET_CHAT_WEBHOOK_PARAMETER = var.chat_webhook_parameter })
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.control_api.name
  }

  # The role must be able to write logs before the first invocation.
  depends_on = [aws_iam_role_policy.control_api]
}

# --- Function URL, IAM auth ----------------------------------------------------
#
# Callers sign requests with SigV4 (service `lambda`, the function's region) using
# credentials of the invoker role below. Since October 2025 a Function URL call
# needs two grants: lambda:InvokeFunctionUrl (identity policy of the invoker role)
# and lambda:InvokeFunction (resource policy below, valid only for calls that come
# through the Function URL). The seed's client invokes the function directly
# (`aws lambda invoke`), so the role may also call lambda:InvokeFunction on this
# function itself (identity policy below; same account, no resource policy needed).

resource "aws_lambda_function_url" "control_api" {
  function_name      = aws_lambda_function.control_api.function_name
  authorization_type = "AWS_IAM"
  invoke_mode        = "BUFFERED"
}

# Trusts exactly the hosts' instance roles, and each only under its own instance id
# as session name: the control API sees the caller as
#   arn:aws:sts::<account>:assumed-role/<invoker role>/<instance id>
# and a host cannot pose as another.
data "aws_iam_policy_document" "invoker_assume" {
  dynamic "statement" {
    for_each = aws_iam_role.host

    content {
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = [statement.value.arn]
      }

      condition {
        test     = "StringEquals"
        variable = "sts:RoleSessionName"
        values   = [statement.key]
      }
    }
  }
}

resource "aws_iam_role" "invoker" {
  name                 = local.invoker_role_name
  description          = "Assumed by the clawdinator hosts to call the control API Function URL"
  assume_role_policy   = data.aws_iam_policy_document.invoker_assume.json
  max_session_duration = 3600
  permissions_boundary = aws_iam_policy.invoker_boundary.arn
}

data "aws_iam_policy_document" "invoker" {
  statement {
    sid       = "InvokeControlApiUrl"
    actions   = ["lambda:InvokeFunctionUrl"]
    resources = [aws_lambda_function.control_api.arn]

    condition {
      test     = "StringEquals"
      variable = "lambda:FunctionUrlAuthType"
      values   = ["AWS_IAM"]
    }
  }

  # The seed's direct invocation (README, "Two ways in"): this function only, no
  # version or alias. The payload's control_token is checked like any token; an event
  # shaped like S3's or the schedule's can only make the function read what is in the
  # bucket (a report is posted once, whoever asks).
  statement {
    sid       = "InvokeControlApiDirectly"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.control_api.arn]
  }
}

resource "aws_iam_role_policy" "invoker" {
  name   = "invoke-control-api"
  role   = aws_iam_role.invoker.id
  policy = data.aws_iam_policy_document.invoker.json
}

resource "aws_lambda_permission" "invoker_via_url" {
  statement_id             = "InvokerRoleViaFunctionUrl"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.control_api.function_name
  principal                = aws_iam_role.invoker.arn
  invoked_via_function_url = true
}
