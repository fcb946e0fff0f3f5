# One EC2 instance per entry of the fleet registry, nix/instances.json.
#
# Image changes never replace a host by themselves (ignore_changes = [ami]). A host
# gets a new image only when it is replaced on purpose:
#
#   tofu plan -replace='aws_instance.host["clawdinator-2"]' \
#     -var 'instance_amis={"clawdinator-2":"ami-0123456789abcdef0"}' -out=plan
#   tofu apply plan
#
# which is what workflows/fleet-deploy.yml does, one host per plan/apply.

locals {
  registry = jsondecode(file("${path.module}/../nix/instances.json"))
}

resource "aws_security_group" "host" {
  # name_prefix, not name: with create_before_destroy a replacement group must be
  # able to exist next to the old one.
  name_prefix = "${var.name_prefix}-host-"
  description = "clawdinator bot hosts: nothing inbound, HTTPS outbound"
  vpc_id      = var.vpc_id

  tags = {
    Name                = "${var.name_prefix}-host"
    (var.fleet_tag_key) = var.fleet_tag_value
  }

  lifecycle {
    create_before_destroy = true
  }
}

# No ingress rule at all: the hosts serve nothing and are not logged into over the
# network. Outbound HTTPS covers Discord, GitHub, S3, STS, the control API and the
# Nix binary caches. DNS (the VPC resolver), NTP (Amazon Time Sync) and IMDS are
# not filtered by security groups and need no rule.
resource "aws_vpc_security_group_egress_rule" "host_https" {
  for_each = toset(var.egress_ipv4_cidrs)

  security_group_id = aws_security_group.host.id
  description       = "HTTPS out"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

# --- One role and instance profile per host ----------------------------------

data "aws_iam_policy_document" "host_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "host" {
  for_each = local.registry

  name                 = "${local.host_role_prefix}${each.key}"
  description          = "clawdinator host ${each.key}: reads s3://${var.bucket_name}/${each.value.bootstrapPrefix}/ only"
  assume_role_policy   = data.aws_iam_policy_document.host_assume.json
  permissions_boundary = aws_iam_policy.host_boundary.arn

  # The host boundary scopes the bucket to bootstrap/<this tag>/ (iam-boundary.tf).
  tags = {
    (local.host_id_tag_key) = each.key
  }

  lifecycle {
    precondition {
      condition     = length("${local.host_role_prefix}${each.key}") <= 64
      error_message = "IAM role name ${local.host_role_prefix}${each.key} is longer than 64 characters: shorten name_prefix or the instance id."
    }
  }
}

data "aws_iam_policy_document" "host" {
  for_each = local.registry

  # Its own bootstrap bundle, and nothing else of the bucket.
  statement {
    sid       = "ReadOwnBootstrapBundle"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.fleet.arn}/${each.value.bootstrapPrefix}/*"]
  }

  # Listing, limited to the same prefix: a missing object is then a 404, not a 403.
  statement {
    sid       = "ListOwnBootstrapPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.fleet.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${each.value.bootstrapPrefix}/", "${each.value.bootstrapPrefix}/*"]
    }
  }

  # The control API is called with the invoker role's credentials. Its trust policy
  # pins the session name to this host's id (lambda.tf).
  statement {
    sid       = "AssumeControlApiInvoker"
    actions   = ["sts:AssumeRole"]
    resources = [local.invoker_role_arn]
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]

    content {
      sid       = "DecryptBootstrapBundle"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "host" {
  for_each = local.registry

  name   = "bootstrap-and-control-api"
  role   = aws_iam_role.host[each.key].id
  policy = data.aws_iam_policy_document.host[each.key].json
}

resource "aws_iam_instance_profile" "host" {
  for_each = local.registry

  name = aws_iam_role.host[each.key].name
  role = aws_iam_role.host[each.key].name
}

# --- The hosts -----------------------------------------------------------------

resource "aws_instance" "host" {
  # Checkov findings that do not apply here (reasons also in SECURITY.md):
  #checkov:skip=CKV_AWS_135:The fleet uses Nitro types (t3), EBS-optimized by default at no cost; setting ebs_optimized adds nothing for them, risks an in-place modify of the running hosts, and fails on types without it.
  #checkov:skip=CKV_AWS_126:Detailed (1-minute) monitoring costs per host and nothing reads it: no alarms use it, and the deploy workflow waits on EC2 status checks, which work without it.
  for_each = local.registry

  ami                         = lookup(var.instance_amis, each.key, var.default_ami)
  instance_type               = each.value.instanceType
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.host.id]
  iam_instance_profile        = aws_iam_instance_profile.host[each.key].name
  associate_public_ip_address = var.associate_public_ip_address

  # IMDSv2 only, and not reachable from containers behind an extra hop.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true
  }

  # Who this host is and where its bundle is. A JSON document, not a NixOS
  # configuration: the image disables amazon-init (nix/hosts/common.nix). No secret
  # goes here; user data is readable by anything on the host and via the EC2 API.
  user_data = jsonencode({
    instanceId      = each.key
    host            = each.value.host
    region          = local.region
    bootstrapBucket = aws_s3_bucket.fleet.id
    bootstrapPrefix = each.value.bootstrapPrefix
    controlApiUrl   = aws_lambda_function_url.control_api.function_url
    invokerRoleArn  = local.invoker_role_arn
  })

  # The fleet tag is also a default tag; it is repeated here because the control API
  # finds hosts by it and the deploy role may only launch instances that carry it.
  tags = {
    Name                    = each.value.host
    (var.fleet_tag_key)     = var.fleet_tag_value
    "clawdinator:instance"  = each.key
    "clawdinator:bootstrap" = each.value.bootstrapPrefix
  }

  # Permissions and egress in place before the host boots and fetches its bundle.
  depends_on = [aws_iam_role_policy.host, aws_vpc_security_group_egress_rule.host_https]

  lifecycle {
    # A new image reaches a host only through an explicit -replace (see the top of
    # this file). Destroy-before-create (the default) on replacement is deliberate:
    # two hosts with the same Discord token must never run at once.
    ignore_changes = [ami]

    precondition {
      condition     = each.value.bootstrapPrefix == "bootstrap/${each.key}"
      error_message = "nix/instances.json: ${each.key}.bootstrapPrefix must be \"bootstrap/${each.key}\" (the host's IAM policy is scoped to it)."
    }

    precondition {
      condition     = alltrue([for id in keys(var.instance_amis) : contains(keys(local.registry), id)])
      error_message = "instance_amis names instances that are not in nix/instances.json: ${join(", ", setsubtract(keys(var.instance_amis), keys(local.registry)))}."
    }
  }
}
