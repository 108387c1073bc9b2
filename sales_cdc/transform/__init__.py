"""Firehose transform Lambda: DynamoDB stream records from Kinesis to landing rows (stdlib)."""
