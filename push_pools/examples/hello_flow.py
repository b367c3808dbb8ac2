"""The demo's flow: greets someone a few times and returns a summary."""

from push_pools import flow


@flow(log_prints=True, retries=1, retry_delay_seconds=1)
def hello(name: str = "world", times: int = 2) -> dict[str, object]:
    """Say hello `times` times."""
    for i in range(times):
        print(f"hello {name}! ({i + 1}/{times})")
    return {"greeted": name, "times": times}
