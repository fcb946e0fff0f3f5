terraform {
  # 1.11: write-only attributes (`value_wo` on the SSM parameters, see lambda.tf).
  # Both OpenTofu and Terraform have them from 1.11 on.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.42: aws_lambda_permission.invoked_via_function_url (lambda.tf).
      version = "~> 6.42"
    }
  }

  # Partial configuration: nothing about the state location is committed. Give it at
  # init time (see README.md), e.g.
  #
  #   tofu init \
  #     -backend-config="bucket=<state bucket>" \
  #     -backend-config="key=clawdinator/fleet.tfstate" \
  #     -backend-config="region=<region>" \
  #     -backend-config="dynamodb_table=<lock table>" \
  #     -backend-config="encrypt=true"
  #
  # The state bucket and the lock table are created outside this configuration (a
  # configuration cannot hold the backend it is stored in).
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  # Only the exact account this fleet lives in: a mistaken profile or role fails
  # before anything is planned against the wrong account.
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = {
      (var.fleet_tag_key) = var.fleet_tag_value
      "managed-by"        = "opentofu"
      "fleet-config"      = "clawdinator/infra"
    }
  }
}
