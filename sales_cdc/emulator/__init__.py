"""Embedded stand-ins for the AWS managed services (emulator, pipe and firehose runtime, crawler, query engine)."""
