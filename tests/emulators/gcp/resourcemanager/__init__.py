"""Resource Manager v3: projects and their IAM policies."""
