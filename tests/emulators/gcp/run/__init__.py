"""Cloud Run Admin API v2: jobs, executions that really run, tasks and operations."""
