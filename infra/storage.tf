# The fleet bucket. One bucket, several prefixes with different lives:
#
#   bootstrap/<id>/       per-host bootstrap bundle; each host reads only its own   kept
#   secrets/              encrypted (agenix) secrets                                kept
#   clawdinator-nixos-*   uploaded NixOS images, input of AMI registration         expire (image_retention_days)
#   idempotency/          control API request records                               expire (idempotency_retention_days)
#   audit/                control API audit records                                 kept
#   heartbeats/<id>.json  each host's latest heartbeat (control API)               overwritten
#   reports/<request_id>  each run's report (control-api roll); S3 tells the
#                         control API when one lands (events.tf)                    kept
#   chat/<request_id>     claim of a report's one chat message (control API)        kept
#   locks/<target>.json   operators' locks (control API), deleted on unlock/expiry  old versions expire
#   leases/deploy.json    the one deploy lease (control API), deleted when it ends  old versions expire
#   queue/<request_id>    queued deploys and their claims (control API)             old versions expire
#   deployed/revisions.json  each host's deployed revision, rewritten when a report
#                         lands (control API); status flags revision_drift by it    old versions expire
#
# The state of this configuration is NOT in this bucket: the backend bucket and lock
# table are created outside this configuration and given at `tofu init`.

resource "aws_s3_bucket" "fleet" {
  # Checkov findings that do not apply here (reasons also in SECURITY.md):
  #checkov:skip=CKV_AWS_18:Server access logs need a second bucket (itself unlogged); who reads and writes here is covered by IAM (per-host prefix), and CloudTrail S3 data events are the account-level way to log object access.
  #checkov:skip=CKV_AWS_144:The hosts that read this bucket run in the same region, so a replica elsewhere would not help them boot; versioning and prevent_destroy cover deletion, and replication would double storage.
  bucket = var.bucket_name

  # Audit records and bootstrap bundles live here; a plan that would delete the
  # bucket fails instead of emptying it.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_ownership_controls" "fleet" {
  bucket = aws_s3_bucket.fleet.id

  rule {
    # ACLs disabled: the account owns every object, access is by policy only.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "fleet" {
  bucket = aws_s3_bucket.fleet.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "fleet" {
  bucket = aws_s3_bucket.fleet.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "fleet" {
  bucket = aws_s3_bucket.fleet.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.bucket_kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.bucket_kms_key_arn
    }
    # Fewer KMS requests (and less cost) when a customer key is used.
    bucket_key_enabled = var.bucket_kms_key_arn != null
  }
}

data "aws_iam_policy_document" "fleet_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.fleet.arn, "${aws_s3_bucket.fleet.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.fleet.arn, "${aws_s3_bucket.fleet.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  # The rules this bucket is judged by, and its audit trail, are the administrators'
  # alone (admin_principal_arns): nobody else, the CI deploy role and the control API
  # included, may change the bucket's policy, lifecycle (expiry), versioning, Object
  # Lock, public access block, ownership or encryption, delete the bucket, or delete
  # any object or version under audit/. (Lifecycle expiration itself is not subject
  # to bucket policies; no rule expires audit/, and no one else can add one.) The
  # account's root user can still replace a policy that locks everyone out.
  statement {
    sid    = "OnlyAdminsChangeBucketRules"
    effect = "Deny"
    actions = [
      "s3:PutBucketPolicy",
      "s3:DeleteBucketPolicy",
      "s3:PutLifecycleConfiguration",
      "s3:PutBucketVersioning",
      "s3:PutBucketObjectLockConfiguration",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketOwnershipControls",
      "s3:PutEncryptionConfiguration",
      "s3:DeleteBucket",
    ]
    resources = [aws_s3_bucket.fleet.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = var.admin_principal_arns
    }
  }

  statement {
    sid       = "OnlyAdminsDeleteAuditRecords"
    effect    = "Deny"
    actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:PutObjectLegalHold"]
    resources = ["${aws_s3_bucket.fleet.arn}/audit/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = var.admin_principal_arns
    }
  }
}

resource "aws_s3_bucket_policy" "fleet" {
  bucket = aws_s3_bucket.fleet.id
  policy = data.aws_iam_policy_document.fleet_bucket.json

  # A bucket policy is refused while the public access block is being written.
  depends_on = [aws_s3_bucket_public_access_block.fleet]
}

resource "aws_s3_bucket_lifecycle_configuration" "fleet" {
  bucket = aws_s3_bucket.fleet.id

  # Uploaded NixOS images are only input of AMI registration; the AMIs themselves are
  # kept or pruned by `control-api prune-amis`.
  rule {
    id     = "expire-nixos-images"
    status = "Enabled"

    filter {
      prefix = "clawdinator-nixos-"
    }

    expiration {
      days = var.image_retention_days
    }

    # The bucket is versioned: without this the expired images would stay as
    # noncurrent versions and keep costing.
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "expire-idempotency-records"
    status = "Enabled"

    filter {
      prefix = "idempotency/"
    }

    expiration {
      days = var.idempotency_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # The bucket is versioned and each host's heartbeat is overwritten every minute: without this every old version (and
  # delete marker) would be kept for ever.
  rule {
    id     = "expire-old-heartbeats-versions"
    status = "Enabled"

    filter {
      prefix = "heartbeats/"
    }

    expiration {
      expired_object_delete_marker = true
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # The bucket is versioned and the deployed revisions are rewritten per report: without this every old version
  # would be kept for ever.
  rule {
    id     = "expire-old-deployed-versions"
    status = "Enabled"

    filter {
      prefix = "deployed/"
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }

  # The bucket is versioned and locks come and go: without this every old version (and
  # delete marker) would be kept for ever.
  rule {
    id     = "expire-old-locks-versions"
    status = "Enabled"

    filter {
      prefix = "locks/"
    }

    expiration {
      expired_object_delete_marker = true
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # The bucket is versioned and the lease is taken and ended per deploy: without this every old version (and
  # delete marker) would be kept for ever.
  rule {
    id     = "expire-old-leases-versions"
    status = "Enabled"

    filter {
      prefix = "leases/"
    }

    expiration {
      expired_object_delete_marker = true
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # The bucket is versioned and queue entries and their claims are deleted once dispatched: without this every old version (and
  # delete marker) would be kept for ever.
  rule {
    id     = "expire-old-queue-versions"
    status = "Enabled"

    filter {
      prefix = "queue/"
    }

    expiration {
      expired_object_delete_marker = true
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # bootstrap/, secrets/ and audit/ have no expiration rule on purpose: they are kept.

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"

    filter {}

    # Only delete markers with no noncurrent version left behind them; no data.
    expiration {
      expired_object_delete_marker = true
    }
  }

  # Lifecycle rules on a versioned bucket are applied after versioning is on.
  depends_on = [aws_s3_bucket_versioning.fleet]
}
