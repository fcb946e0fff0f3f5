# What invokes the control API besides its Function URL (README, "Events"):
#
#   * S3, when a run's report lands: reports/<request_id>.json in the fleet bucket,
#     written by `control-api roll` in the deploy workflow. The function posts the
#     report to the chat (FLEET_CHAT_WEBHOOK_PARAMETER), once.
#   * EventBridge, every 5 minutes: the safety net of the deploy queue's drain when a
#     report's event was lost.
#
# Both invoke asynchronously; the function recognizes each event by its shape.
# Admin-owned like the function's other permissions: the deploy role can read them
# (plan's refresh) but change none.

resource "aws_lambda_permission" "s3_reports" {
  statement_id   = "FleetBucketReportCreated"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.control_api.function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.fleet.arn
  source_account = local.account_id
}

resource "aws_s3_bucket_notification" "fleet" {
  bucket = aws_s3_bucket.fleet.id

  lambda_function {
    id                  = "reports-to-control-api"
    lambda_function_arn = aws_lambda_function.control_api.arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = "reports/"
    filter_suffix       = ".json"
  }

  # S3 tests the destination when the notification is written: the permission first.
  depends_on = [aws_lambda_permission.s3_reports]
}

resource "aws_cloudwatch_event_rule" "control_api_schedule" {
  name                = local.schedule_rule_name
  description         = "Invokes the clawdinator control API every 5 minutes (deploy queue drain safety net)"
  schedule_expression = "rate(5 minutes)"
}

resource "aws_cloudwatch_event_target" "control_api_schedule" {
  rule      = aws_cloudwatch_event_rule.control_api_schedule.name
  target_id = "control-api"
  arn       = aws_lambda_function.control_api.arn
}

resource "aws_lambda_permission" "schedule" {
  statement_id   = "ScheduleEveryFiveMinutes"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.control_api.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.control_api_schedule.arn
  source_account = local.account_id
}
