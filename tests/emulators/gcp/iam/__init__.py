"""IAM admin v1 (gRPC only in the Python client): service accounts, their keys and policies."""
