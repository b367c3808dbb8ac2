"""The `docker` pool type: a polling worker runs each flow run in a container of a Docker engine.

Modules: template (the default base job template, POOL_TYPE and the job-variable check; stdlib
only: the CLI loads it), executor (DockerExecutor, which imports the docker SDK lazily).
"""
