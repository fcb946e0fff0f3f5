# ---------------------------------------------------------------------------
# Account and naming
# ---------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region of the fleet (instances, Lambda, bucket, SSM parameters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region name such as eu-central-1."
  }
}

variable "allowed_account_ids" {
  description = "If set, the AWS provider refuses to run against any other account."
  type        = list(string)
  default     = null

  validation {
    condition     = var.allowed_account_ids == null || alltrue([for id in coalesce(var.allowed_account_ids, []) : can(regex("^[0-9]{12}$", id))])
    error_message = "allowed_account_ids must be 12-digit AWS account ids."
  }
}

variable "name_prefix" {
  description = "Prefix of every named resource (roles, function, log group, security group)."
  type        = string
  default     = "clawdinator"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name_prefix))
    error_message = "name_prefix must be 2-24 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

# ---------------------------------------------------------------------------
# Tags the control API and the image pipeline agree on
# ---------------------------------------------------------------------------

variable "fleet_tag_key" {
  description = "Tag key that marks fleet resources; the control API finds instances by it (FLEET_TAG_KEY)."
  type        = string
  default     = "app"
}

variable "fleet_tag_value" {
  description = "Value of fleet_tag_key on fleet resources (FLEET_TAG_VALUE)."
  type        = string
  default     = "clawdinator"
}

variable "image_tag_key" {
  description = "Tag key of fleet AMIs (and their snapshots); latest-ami and prune-amis select by it (FLEET_IMAGE_TAG_KEY)."
  type        = string
  default     = "clawdinator"
}

variable "image_tag_value" {
  description = "Value of image_tag_key on fleet AMIs (FLEET_IMAGE_TAG_VALUE)."
  type        = string
  default     = "true"
}

# ---------------------------------------------------------------------------
# Bucket
# ---------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the fleet bucket: bootstrap/<id>/ bundles, clawdinator-nixos-* images, idempotency/ and audit/ records of the control API."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.|^xn--|-s3alias$|--ol-s3$|^\\d+\\.\\d+\\.\\d+\\.\\d+$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters, a-z 0-9 . -)."
  }
}

variable "bucket_kms_key_arn" {
  description = "Customer managed KMS key for the fleet bucket (SSE-KMS). null: SSE-S3 (AES256), which needs no key grants."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$", var.bucket_kms_key_arn))
    error_message = "bucket_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<uuid>)."
  }
}

variable "image_retention_days" {
  description = "Days after which uploaded clawdinator-nixos-* image objects expire (the registered AMIs are pruned separately)."
  type        = number
  default     = 14

  validation {
    condition     = var.image_retention_days >= 1 && floor(var.image_retention_days) == var.image_retention_days
    error_message = "image_retention_days must be a whole number of days, at least 1."
  }
}

variable "idempotency_retention_days" {
  description = "Days after which the control API's idempotency/ records expire."
  type        = number
  default     = 2

  validation {
    condition     = var.idempotency_retention_days >= 1 && floor(var.idempotency_retention_days) == var.idempotency_retention_days
    error_message = "idempotency_retention_days must be a whole number of days, at least 1."
  }
}

# ---------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------

variable "default_ami" {
  description = "AMI for hosts that have no entry in instance_amis. Only used when an instance is created or replaced: lifecycle.ignore_changes = [ami]."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8}([0-9a-f]{9})?$", var.default_ami))
    error_message = "default_ami must look like ami-0123456789abcdef0."
  }
}

variable "instance_amis" {
  description = "Per-instance AMI overrides, registry id -> AMI id. The deploy workflow sets the one host it replaces."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for ami in values(var.instance_amis) : can(regex("^ami-[0-9a-f]{8}([0-9a-f]{9})?$", ami))])
    error_message = "Every instance_amis value must look like ami-0123456789abcdef0."
  }
}

variable "vpc_id" {
  description = "VPC of the hosts' security group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8}([0-9a-f]{9})?$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_id" {
  description = "Subnet of the hosts (in vpc_id). It needs a route to the internet (Discord, GitHub, Nix caches): a public subnet with associate_public_ip_address = true, or a private one behind NAT."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8}([0-9a-f]{9})?$", var.subnet_id))
    error_message = "subnet_id must look like subnet-0123456789abcdef0."
  }
}

variable "associate_public_ip_address" {
  description = "Give hosts a public IPv4 address. null: the subnet's default."
  type        = bool
  default     = null
}

variable "egress_ipv4_cidrs" {
  description = "Where hosts may open HTTPS (tcp/443) connections. DNS (VPC resolver), NTP (Amazon Time Sync) and the instance metadata service are not filtered by security groups and need no rule."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.egress_ipv4_cidrs : can(cidrnetmask(c))])
    error_message = "egress_ipv4_cidrs must be IPv4 CIDR blocks."
  }
}

variable "root_volume_size_gb" {
  description = "Size of each host's encrypted gp3 root volume in GiB (the Nix store lives there)."
  type        = number
  default     = 40

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 1024
    error_message = "root_volume_size_gb must be between 8 and 1024."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root volumes. null: the account's default EBS key (aws/ebs)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Control API (Lambda)
# ---------------------------------------------------------------------------

variable "lambda_zip" {
  description = "Path of the Lambda zip built by scripts/build-lambda-zip. null: <repo>/target/lambda/control-api.zip."
  type        = string
  default     = null
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency of the control API: a cap on parallel deploy requests and on cost. -1: no reservation (needed on accounts whose concurrency limit is 10)."
  type        = number
  default     = 5

  validation {
    condition     = var.lambda_reserved_concurrency == -1 || (var.lambda_reserved_concurrency >= 1 && var.lambda_reserved_concurrency <= 50)
    error_message = "lambda_reserved_concurrency must be -1 or between 1 and 50."
  }
}

variable "log_retention_days" {
  description = "Retention of the control API's CloudWatch log group, in days. It holds the audit trail (one audit line per request), so keep at least a year (365)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key for the log group. null: CloudWatch Logs' own encryption. The key policy must allow logs.<region>.amazonaws.com."
  type        = string
  default     = null
}

variable "rust_log" {
  description = "RUST_LOG filter of the control API. No `trace` for lambda_runtime (nor as the default level): at trace it logs every raw event, headers and control token included."
  type        = string
  default     = "info"

  # A directive with level trace (or 5) whose target is empty (the default level) or
  # starts with lambda_runtime, with or without a [span] filter: `trace`, `=trace`,
  # `lambda_runtime=trace`, `lambda_runtime_api_client=trace`, `lambda_runtime[x]=trace`.
  # scripts/check-deploy-path runs this regex against a table of filters.
  validation {
    condition     = !can(regex("(?i)(^|,)\\s*((lambda_runtime[a-z0-9_:]*)?\\s*(\\[[^\\]]*\\])?\\s*=\\s*)?(trace|5)\\s*(,|$)", var.rust_log))
    error_message = "rust_log must not set trace for lambda_runtime (or as the default level): lambda_runtime logs raw events, with their headers, at trace."
  }
}

variable "ssm_parameter_prefix" {
  description = "Path under which the control API's SecureString parameters live: <prefix>/control-token and <prefix>/github-token."
  type        = string
  default     = "/clawdinator/control-api"

  validation {
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.ssm_parameter_prefix))
    error_message = "ssm_parameter_prefix must be an absolute parameter path such as /clawdinator/control-api."
  }
}

variable "chat_webhook_parameter" {
  description = "Name of an SSM SecureString parameter (created by the operators) holding a Discord-compatible webhook URL; each run's report is posted there. Empty: no chat messages."
  type        = string
  default     = ""

  validation {
    condition     = var.chat_webhook_parameter == "" || can(regex("^(/[A-Za-z0-9_.-]+)+$", var.chat_webhook_parameter))
    error_message = "chat_webhook_parameter must be empty or an absolute parameter path such as /clawdinator/chat-webhook."
  }
}

variable "ssm_kms_key_arn" {
  description = "Customer managed KMS key of the SecureString parameters. null: the AWS managed key aws/ssm."
  type        = string
  default     = null

  validation {
    condition     = var.ssm_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]{36}$", var.ssm_kms_key_arn))
    error_message = "ssm_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<uuid>)."
  }
}

# ---------------------------------------------------------------------------
# GitHub
# ---------------------------------------------------------------------------

variable "github_repo" {
  description = "The fleet repository, owner/name: where the control API dispatches fleet-deploy.yml, and the only repository whose workflows may assume the deploy roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$", var.github_repo))
    error_message = "github_repo must be owner/name."
  }
}

variable "github_workflow" {
  description = "Workflow file the control API dispatches (GITHUB_WORKFLOW), under .github/workflows/. The deploy role trusts only jobs of this file, run from github_ref."
  type        = string
  default     = "fleet-deploy.yml"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+\\.ya?ml$", var.github_workflow))
    error_message = "github_workflow must be a workflow file name such as fleet-deploy.yml."
  }
}

variable "github_prune_workflow" {
  description = "Workflow file of the AMI retention, under .github/workflows/. The prune role trusts only jobs of this file, run from github_ref."
  type        = string
  default     = "ami-prune.yml"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+\\.ya?ml$", var.github_prune_workflow))
    error_message = "github_prune_workflow must be a workflow file name such as ami-prune.yml."
  }
}

variable "github_ref" {
  description = "Branch the control API dispatches the workflow on (GITHUB_REF). The deploy role trusts only this branch."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.github_ref)) && !startswith(var.github_ref, "refs/")
    error_message = "github_ref must be a branch name such as main (without refs/heads/)."
  }
}

variable "github_environment" {
  description = "If the deploy workflow's apply job runs in a GitHub environment, its name: the deploy role then trusts repo:<repo>:environment:<name>:job_workflow_ref:<repo>/.github/workflows/<github_workflow>@refs/heads/<github_ref> instead of the branch subject. Give the environment a deployment branch rule for github_ref only (workflows/README.md)."
  type        = string
  default     = null

  validation {
    condition     = var.github_environment == null || can(regex("^[A-Za-z0-9._ -]{1,255}$", var.github_environment))
    error_message = "github_environment must be an environment name (letters, digits, . _ - and spaces)."
  }
}

variable "github_prune_environment" {
  description = "The same as github_environment, for the prune job of github_prune_workflow and the prune role."
  type        = string
  default     = null

  validation {
    condition     = var.github_prune_environment == null || can(regex("^[A-Za-z0-9._ -]{1,255}$", var.github_prune_environment))
    error_message = "github_prune_environment must be an environment name (letters, digits, . _ - and spaces)."
  }
}

variable "admin_principal_arns" {
  description = "IAM principals that administer this configuration (the apply of admin-owned resources; see infra/README.md). The fleet bucket's policy lets only them change the bucket's policy, lifecycle, versioning or Object Lock, or delete anything under audit/. Role or user ARNs; wildcards as in ArnLike, e.g. arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_AdministratorAccess_*."
  type        = list(string)

  validation {
    condition     = length(var.admin_principal_arns) > 0 && alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "admin_principal_arns must be one or more IAM role or user ARNs of this account's administrators."
  }
}

variable "create_github_oidc_provider" {
  description = "Create the account's OIDC provider for token.actions.githubusercontent.com. false if the account already has one (there can be only one per URL)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# State backend (for the deploy role's permissions; the backend itself is
# configured with -backend-config at init)
# ---------------------------------------------------------------------------

variable "tf_state_bucket" {
  description = "Bucket holding this configuration's state (the backend's `bucket`)."
  type        = string
}

variable "tf_state_key" {
  description = "Object key of the state (the backend's `key`)."
  type        = string
  default     = "clawdinator/fleet.tfstate"
}

variable "tf_lock_table" {
  description = "DynamoDB table for state locking (the backend's `dynamodb_table`)."
  type        = string
}

variable "tf_state_kms_key_arn" {
  description = "KMS key of the state bucket, if it uses SSE-KMS with a customer managed key; the deploy role is granted its use through S3."
  type        = string
  default     = null
}
