"""The `ecs:push` executor: each flow run is an AWS ECS task (Fargate by default).

Modules: job (the run's settings and names, pure), aws (clients and error translation),
status (describe_tasks -> InfrastructureStatus), executor (EcsExecutor, the verbs of
push_pools.executors.base), template (the default base job template, Fargate sizes and
POOL_TYPE; stdlib only, as the CLI loads it).

Pitfalls, each handled where it bites:
- ECS limits startedBy to 36 characters: a run's name is hashed (job.started_by_for); the full
  name is the task's push-pools:infrastructure-name tag.
- ECS lists only desiredStatus RUNNING unless asked: looking for a task asks twice.
- One task definition per deployment and settings, found again by its family name (a hash of
  its content); the per-run environment, API key included, goes in task overrides, which
  anyone allowed ecs:DescribeTasks can read.
- Fargate needs an execution role for awslogs and secrets, awsvpc networking with subnets, and
  one of the cpu/memory pairs in template.FARGATE_SIZES.
- ECS forgets a stopped task after about an hour: status() then says MISSING.
- moto: run_task ignores clientToken (so run_task is never retried blindly), describe_tasks
  reports no failures for unknown tasks, describe_task_definition(family) may return an
  INACTIVE revision (so list_task_definitions is used), auth errors of JSON services come as
  XML (aws._from_client_error reads their code).
"""
