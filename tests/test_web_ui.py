"""The web UI in a real browser (Debian's chromium driven by Playwright) against a real server.

Set PUSH_POOLS_UI_SCREENSHOTS=1 to also save the main pages under docs/images/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import deploy

CHROMIUM = "/usr/bin/chromium"
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)"
)


def expect(locator: Any) -> Any:
    """Playwright's retrying assertions, imported where a browser test runs."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=20_000)
    return playwright_expect(locator)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def base(server: Any) -> str:
    return server.api_url.removesuffix("/api")


def _shot(page: Any, name: str) -> None:
    if os.environ.get("PUSH_POOLS_UI_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)


def test_a_pool_created_in_the_ui_is_listed_by_the_cli(
    server: Any, page: Any, cli: Callable[..., Any]
) -> None:
    page.goto(f"{base(server)}/work-pools")
    page.get_by_role("link", name="Create a work pool").click()
    page.get_by_role("link", name="process").first.click()
    page.get_by_label("Pool name").fill("from-the-ui")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/work-pools/from-the-ui")
    assert "from-the-ui" in cli("work-pool", "ls").stdout


def test_invalid_input_shows_the_servers_message_beside_the_field(server: Any, page: Any) -> None:
    page.goto(f"{base(server)}/work-pools/new?type=process")
    page.get_by_label("Pool name").fill("Bad Name!")
    page.get_by_role("button", name="Create").click()
    message = page.locator("#err-name")
    assert "is not allowed" in message.inner_text()
    assert page.get_by_label("Pool name").get_attribute("aria-describedby") == "err-name"


def test_a_polling_worker_turns_the_pool_ready_without_a_reload(
    server: Any, client: Any, page: Any, worker_factory: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools")
    status = page.locator('tr[data-pool="pool"] .status')
    assert "NOT_READY" in status.inner_text()
    page.evaluate("window.notReloaded = true")
    worker_factory("pool")
    page.wait_for_function(
        "document.querySelector('tr[data-pool=\"pool\"] .status').textContent.includes(' READY')"
    )
    assert page.evaluate("window.notReloaded") is True
    _shot(page, "work-pools")


def test_a_run_from_the_form_completes_and_shows_its_logs(
    server: Any, client: Any, page: Any, flow_dir: Path, worker_factory: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deploy(client, flow_dir, "greet")
    worker_factory("pool")
    page.goto(f"{base(server)}/deployments")
    page.get_by_role("link", name="Run", exact=True).click()
    page.get_by_label("name").first.fill("Ada")
    page.get_by_label("times").fill("2")
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/flow-runs/*")
    page.locator(".badge.state-completed").first.wait_for()
    assert page.locator("#logs").inner_text().count("hello Ada") == 2
    run = client.list_runs()[0]
    assert run["parameters"] == {"name": "Ada", "times": 2}
    _shot(page, "flow-run")
    page.goto(f"{base(server)}/")
    _shot(page, "dashboard")


def test_a_wrong_parameter_type_is_refused_beside_the_field(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    page.goto(f"{base(server)}/deployments/{deployment['id']}/run")
    page.get_by_label("times").fill("many")
    page.get_by_role("button", name="Run").click()
    assert "not a whole number" in page.locator("#err-param\\.times").inner_text()
    assert client.list_runs() == []


def test_a_blocks_secret_never_reaches_the_page(server: Any, page: Any) -> None:
    bodies: list[bytes] = []
    page.on("response", lambda response: bodies.append(response.body()))
    page.goto(f"{base(server)}/blocks?type=secret")
    page.get_by_label("Name", exact=True).fill("db-password")
    page.get_by_label("value").fill("hunter2-very-secret")
    page.get_by_role("button", name="Create block").click()
    page.wait_for_url("**/blocks")
    assert "db-password" in page.locator("table").inner_text()
    page.goto(f"{base(server)}/api/blocks/db-password")
    assert bodies and all(b"hunter2-very-secret" not in body for body in bodies)


def test_with_an_api_key_the_page_asks_for_it_and_refuses_a_wrong_one(
    server_factory: Callable[..., Any], page: Any
) -> None:
    server = server_factory(api_key="right-key")
    page.goto(f"{base(server)}/work-pools")
    assert "/login?next=" in page.url, page.content()[:500]
    page.get_by_label("API key").fill("wrong-key")
    page.get_by_role("button", name="Sign in").click()
    assert "wrong API key" in page.locator("#err-api_key").inner_text()
    page.get_by_label("API key").fill("right-key")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/work-pools")
    cookie = next(c for c in page.context.cookies() if c["name"] == "push_pools_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] == -1
    assert "right-key" not in cookie["value"]
    assert page.evaluate("document.cookie") == ""


def test_the_api_docs_render_offline(server: Any, page: Any) -> None:
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base(server)):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{base(server)}/api/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 10
    assert outside == []


def test_pages_fit_a_phone_and_are_keyboard_reachable(
    server: Any, client: Any, browser: Any
) -> None:
    client.create_work_pool({"name": "a-pool-with-a-rather-long-name", "type": "process"})
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for path in ("/", "/work-pools", "/deployments", "/flow-runs", "/blocks"):
            page.goto(f"{base(server)}{path}")
            # Wide tables scroll inside their box; the page itself never scrolls sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        page.goto(f"{base(server)}/work-pools")
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Create a work pool":
                break
        page.keyboard.press("Enter")
        page.wait_for_url("**/work-pools/new")
    finally:
        context.close()


def test_a_pools_job_variables_edited_in_the_ui_reach_its_next_run(
    server: Any, client: Any, page: Any, flow_dir: Path, worker_factory: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "show_env", parameters={"key": "GREETING"})
    page.goto(f"{base(server)}/work-pools/pool")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Environment Variables").fill('{"GREETING": "set in the UI"}')
    page.get_by_label("Concurrency limit").fill("3")
    _shot(page, "work-pool-edit")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/work-pools/pool")
    assert "concurrency 3" in page.locator("#pool-head").inner_text()
    pool = client.get_work_pool("pool")
    assert pool["base_job_template"]["variables"]["properties"]["env"]["default"] == {
        "GREETING": "set in the UI"
    }
    worker_factory("pool")
    page.goto(f"{base(server)}/deployments/{deployment['id']}/run")
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/flow-runs/*")
    page.locator(".badge.state-completed").first.wait_for()
    assert page.locator("#result").inner_text() == "set in the UI"


def test_a_pool_edit_with_bad_values_keeps_the_pool_and_says_why(
    server: Any, client: Any, page: Any
) -> None:
    client.create_work_pool({"name": "pool", "type": "process", "concurrency_limit": 2})
    page.goto(f"{base(server)}/work-pools/pool/edit")
    page.get_by_label("Concurrency limit").fill("-1")
    page.get_by_label("Environment Variables").fill("{not json")
    page.get_by_role("button", name="Save").click()
    assert "not valid JSON" in page.locator("#err-var\\.env").inner_text()
    page.get_by_label("Environment Variables").fill("{}")
    page.get_by_role("button", name="Save").click()
    assert "greater than or equal to 0" in page.locator("#err-concurrency_limit").inner_text()
    page.get_by_label("Concurrency limit").fill("")
    page.locator("#base_job_template").evaluate("el => el.closest('details').open = true")
    page.locator("#base_job_template").fill('{"job_configuration": {}, "variables": []}')
    page.get_by_role("button", name="Save").click()
    assert page.locator("#err-base_job_template").inner_text()
    assert client.get_work_pool("pool")["concurrency_limit"] == 2


def test_deleting_a_pool_with_work_needs_force_and_its_page_then_says_deleted(
    server: Any, client: Any, page: Any, flow_dir: Path, cli: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    client.create_run(deployment["id"], {})
    page.goto(f"{base(server)}/work-pools/pool")
    page.get_by_role("link", name="Delete").click()
    assert "1 unfinished run" in page.locator("main").inner_text()
    page.get_by_role("button", name="Delete pool").click()
    assert "tick this" in page.locator("#err-force").inner_text()
    assert "pool" in cli("work-pool", "ls").stdout
    page.get_by_label("Also pause its deployments and cancel its runs").check()
    page.get_by_role("button", name="Delete pool").click()
    page.wait_for_url("**/work-pools/pool")
    assert "was deleted" in page.locator("#deleted").inner_text()
    assert client.get_deployment(deployment["id"])["paused"] is True
    assert client.list_runs()[0]["state"] == "CANCELLED"
    page.goto(f"{base(server)}/work-pools/pool/edit")
    assert "was deleted" in page.locator("main").inner_text()


def test_a_pool_without_work_is_deleted_after_one_confirmation(
    server: Any, client: Any, page: Any
) -> None:
    client.create_work_pool({"name": "idle", "type": "process"})
    page.goto(f"{base(server)}/work-pools/idle/delete")
    assert page.get_by_label("Also pause its deployments and cancel its runs").count() == 0
    page.get_by_role("button", name="Delete idle").click()
    page.wait_for_url("**/work-pools/idle")
    assert "was deleted" in page.locator("#deleted").inner_text()
    assert [p["name"] for p in client.list_work_pools()] == []


def test_work_queues_are_added_edited_and_paused_on_the_pool_page(
    server: Any, client: Any, page: Any
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools/pool")
    page.get_by_role("link", name="Add a work queue").click()
    page.get_by_label("Queue name").fill("urgent")
    page.get_by_label("Priority").fill("0")
    page.get_by_role("button", name="Add queue").click()
    assert "greater than or equal to 1" in page.locator("#err-priority").inner_text()
    page.get_by_label("Priority").fill("2")
    page.get_by_label("Concurrency limit").fill("5")
    page.get_by_role("button", name="Add queue").click()
    page.wait_for_url("**/work-pools/pool?tab=queues")
    row = page.locator('tr[data-queue="urgent"]')
    assert "NOT_READY" in row.inner_text()
    page.get_by_role("link", name="Edit queue urgent").click()
    page.get_by_label("Concurrency limit").fill("")
    page.get_by_label("Priority").fill("1")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/work-pools/pool?tab=queues")
    page.get_by_role("button", name="Pause queue urgent").click()
    # The same URL again: wait for the new page's row rather than for the URL.
    expect(page.locator('tr[data-queue="urgent"] .status')).to_contain_text("PAUSED")
    queue = client.get_work_queue("pool", "urgent")
    assert (queue["priority"], queue["concurrency_limit"], queue["paused"]) == (1, None, True)
    _shot(page, "work-pool")
    page.get_by_role("button", name="Resume queue urgent").click()
    expect(page.locator('tr[data-queue="urgent"] .status')).to_contain_text("NOT_READY")
    assert client.get_work_queue("pool", "urgent")["paused"] is False


def test_retry_runs_the_deployment_again_with_the_same_parameters_and_job_variables(
    server: Any, client: Any, page: Any, flow_dir: Path, worker_factory: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "show_env", parameters={"key": "WHO"})
    first = client.create_run(
        deployment["id"],
        {"parameters": {"key": "WHO"}, "job_variables": {"env": {"WHO": "again"}}},
    )
    worker_factory("pool")
    page.goto(f"{base(server)}/flow-runs/{first['id']}")
    page.locator(".badge.state-completed").first.wait_for()
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(lambda url: first["id"] not in url)
    page.locator(".badge.state-completed").first.wait_for()
    assert page.locator("#result").inner_text() == "again"
    runs = client.list_runs()
    assert len(runs) == 2
    assert {(str(r["parameters"]), str(r["job_variables"])) for r in runs} == {
        (str({"key": "WHO"}), str({"env": {"WHO": "again"}}))
    }


def test_retry_of_a_run_whose_deployment_was_deleted_says_so(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    run = client.create_run(deployment["id"], {})
    client.cancel_run(run["id"])
    client.delete_deployment(deployment["id"])
    page.goto(f"{base(server)}/flow-runs/{run['id']}")
    page.get_by_role("button", name="Retry").click()
    assert "deployment was deleted" in page.locator("#err-retry").inner_text()
    assert len(client.list_runs()) == 1


def test_a_runs_cloud_infrastructure_links_to_its_console(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    run = client.create_run(deploy(client, flow_dir, "greet")["id"], {})
    group = "aci:sub-1:my-rg:pp-run-1"
    client.set_state(run["id"], {"type": "PENDING", "infrastructure_id": group})
    page.goto(f"{base(server)}/flow-runs/{run['id']}")
    link = page.get_by_role("link", name="open in the cloud console")
    assert link.get_attribute("href") == (
        "https://portal.azure.com/#@/resource/subscriptions/sub-1/resourceGroups/my-rg"
        "/providers/Microsoft.ContainerInstance/containerGroups/pp-run-1/overview"
    )


def test_a_push_pools_page_shows_what_was_provisioned_with_console_links(
    server: Any, client: Any, page: Any
) -> None:
    client.create_work_pool({"name": "ecs-pool", "type": "ecs:push"})
    cluster = "arn:aws:ecs:eu-west-1:123456789012:cluster/pp-ecs-pool"
    client.save_infrastructure(
        "ecs-pool",
        {
            "step": "cluster",
            "kind": "aws:ecs:cluster",
            "identifier": cluster,
            "created": True,
            "data": {
                "name": "pp-ecs-pool",
                "region": "eu-west-1",
                "provisioned_by": "arn:aws:iam::123456789012:user/ada",
            },
        },
    )
    client.save_infrastructure(
        "ecs-pool",
        {
            "step": "vpc",
            "kind": "aws:ec2:vpc",
            "identifier": "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-0abc",
            "created": False,
            "data": {"vpc_id": "vpc-0abc"},
        },
    )
    page.goto(f"{base(server)}/work-pools/ecs-pool")
    page.get_by_role("link", name="Provisioning").click()
    cluster_row = page.locator('tr[data-step="cluster"]')
    assert "created" in cluster_row.inner_text()
    # By whom: the identity the CLI provisioned as (tests/test_cli_provision.py records it).
    assert "by arn:aws:iam::123456789012:user/ada" in cluster_row.inner_text()
    assert cluster_row.get_by_role("link").get_attribute("href") == (
        "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/pp-ecs-pool?region=eu-west-1"
    )
    assert "adopted" in page.locator('tr[data-step="vpc"]').inner_text()
    _shot(page, "work-pool-provisioning")


def test_a_worker_pool_has_no_provisioning_tab(server: Any, client: Any, page: Any) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools/pool?tab=provisioning")
    assert page.get_by_role("link", name="Provisioning").count() == 0
    assert page.locator("#pool-tab").get_by_text("default").count() == 1


def _runs_ago(client: Any, deployment_id: str, *ages: timedelta) -> None:
    now = datetime.now(UTC)
    for age in ages:
        client.create_run(deployment_id, {"scheduled_time": (now - age).isoformat()})


def test_the_runs_list_filters_by_time_and_pages_keeping_its_filters(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    minutes = [timedelta(minutes=i + 1) for i in range(53)]
    _runs_ago(client, deployment["id"], *minutes, timedelta(days=3), timedelta(days=10))
    page.goto(f"{base(server)}/flow-runs")
    page.get_by_label("When").select_option(label="last 24 hours")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/flow-runs?*since=day*")
    rows = page.locator("#runs tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Older runs").click()
    page.wait_for_url("**before=*")
    assert "since=day" in page.url
    expect(rows).to_have_count(3)
    assert page.get_by_role("link", name="Older runs").count() == 0
    page.get_by_role("link", name="Newest").click()
    page.wait_for_url(lambda url: "before=" not in url)
    assert "since=day" in page.url
    expect(rows).to_have_count(50)
    page.goto(f"{base(server)}/flow-runs?since=week&before=x")
    assert "not a page of this list" in page.locator("[role=alert]").inner_text()
    page.goto(f"{base(server)}/flow-runs?since=year")
    assert "'year' is not a time window" in page.locator("[role=alert]").inner_text()
    page.goto(f"{base(server)}/flow-runs?since=week")
    page.get_by_role("link", name="Older runs").click()
    page.wait_for_url("**before=*")
    expect(rows).to_have_count(4)  # the run of 3 days ago, not the one of 10 days ago
    page.goto(f"{base(server)}/flow-runs")
    _shot(page, "flow-runs")
    page.get_by_role("link", name="Older runs").click()
    page.wait_for_url("**before=*")
    expect(rows).to_have_count(5)


def test_deployments_say_their_schedules_in_words_with_times_on_the_schedules_clock(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deploy(
        client, flow_dir, "greet", schedules=[{"cron": "0 1 * * *", "timezone": "Europe/Berlin"}]
    )
    page.goto(f"{base(server)}/deployments")
    assert page.locator(".schedule").inner_text() == "every day at 01:00 Europe/Berlin"
    times = page.locator(".next-run")
    expect(times).to_have_count(3)
    # 01:00 in Berlin, whichever of CET or CEST the next days fall in.
    assert all(" 01:00 CE" in text for text in times.all_inner_texts())
    _shot(page, "deployments")


def test_a_run_from_the_form_takes_job_variable_overrides_and_explains_bad_ones(
    server: Any, client: Any, page: Any, flow_dir: Path, worker_factory: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "show_env", parameters={"key": "WHO"})
    page.goto(f"{base(server)}/deployments/{deployment['id']}/run")
    page.get_by_text("Job variable overrides").click()
    env = page.get_by_label("Environment Variables")
    raw = page.get_by_label("Other job variables (JSON)")
    # The field shows what applies when it is left empty: the pool's default.
    assert env.get_attribute("placeholder") == "{}"
    env.fill("{not json")
    page.get_by_role("button", name="Run").click()
    assert "not valid JSON" in page.locator("#err-jv\\.env").inner_text()
    assert env.get_attribute("aria-describedby") == "err-jv.env"
    env.fill("")
    raw.fill('{"env": "not a mapping"}')
    page.get_by_role("button", name="Run").click()
    # The server's own rule, beside the JSON it is about.
    assert "job variable 'env'" in page.locator("#err-job_variables").inner_text()
    assert raw.get_attribute("aria-describedby") == "err-job_variables"
    assert client.list_runs() == []
    raw.fill('{"labels": {"team": "data"}}')
    env.fill('{"WHO": "set for this run"}')
    page.get_by_label("Stream Output").select_option("false")
    worker_factory("pool")
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/flow-runs/*")
    page.locator(".badge.state-completed").first.wait_for()
    assert page.locator("#result").inner_text() == "set for this run"
    assert client.list_runs()[0]["job_variables"] == {
        "env": {"WHO": "set for this run"},
        "labels": {"team": "data"},
        "stream_output": False,
    }


def test_a_pools_workers_tab_shows_a_new_worker_online_without_a_reload(
    server: Any, client: Any, page: Any, worker_factory: Callable[..., Any]
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools/pool?tab=workers")
    assert "No worker has polled" in page.locator("#pool-tab").inner_text()
    page.evaluate("window.notReloaded = true")
    worker_factory("pool")
    row = page.locator("tr[data-worker]")
    expect(row.locator(".status")).to_contain_text("ONLINE")
    assert page.evaluate("window.notReloaded") is True


def test_a_rows_action_cell_is_as_tall_as_its_row(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deploy(client, flow_dir, "greet", schedules=[{"interval": 3600}])
    page.goto(f"{base(server)}/deployments")
    row = page.locator("#deployments tbody tr").first.bounding_box()
    cell = page.locator("#deployments td.actions").first.bounding_box()
    # Otherwise the row's bottom line stops short under the Run, Runs and Pause actions.
    assert abs(cell["height"] - row["height"]) < 1


def test_dark_and_light_follow_the_system(server: Any, page: Any) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(f"{base(server)}/work-pools")
        colours[scheme] = page.evaluate(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
    assert colours["light"][0] != colours["dark"][0]
    assert colours["light"][1] != colours["dark"][1]


def test_the_keyboard_reaches_a_deployments_run_button_and_shows_where_it_is(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deploy(client, flow_dir, "greet")
    page.goto(f"{base(server)}/deployments")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Run":
            break
    else:
        raise AssertionError("Tab never reached the Run button")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.press("Enter")
    page.wait_for_url("**/deployments/*/run")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Run":
            break
    else:
        raise AssertionError("Tab never reached the form's Run button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/flow-runs/*")
    assert len(client.list_runs()) == 1


def test_an_unknown_address_shows_a_404_page_with_a_way_back(server: Any, page: Any) -> None:
    response = page.goto(f"{base(server)}/no/such/page")
    assert response.status == 404
    assert "Not found" in page.locator("h1").inner_text()
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url(f"{base(server)}/")
    for missing in ("/work-pools/never-made", "/flow-runs/no-such-run"):
        response = page.goto(f"{base(server)}{missing}")
        assert response.status == 404
        assert page.locator("h1").inner_text() == "Not found"
        assert missing.rsplit("/", 1)[1] in page.locator("main").inner_text()
        assert page.get_by_role("link", name="Back to the dashboard").count() == 1


def test_a_deployment_is_paused_and_resumed_from_the_list(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet", schedules=[{"interval": 3600}])
    page.goto(f"{base(server)}/deployments")
    expect(page.locator(".next-run")).to_have_count(3)
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#deployments .status")).to_contain_text("PAUSED")
    # A paused deployment fires no more: its next runs are gone from the list.
    expect(page.locator(".next-run")).to_have_count(0)
    assert client.get_deployment(deployment["id"])["paused"] is True
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".next-run")).to_have_count(3)
    assert client.get_deployment(deployment["id"])["paused"] is False


def test_a_pool_is_paused_and_resumed_from_its_page(server: Any, client: Any, page: Any) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools/pool?tab=workers")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#pool-head .status")).to_contain_text("PAUSED")
    # The tab the user was on stays chosen.
    assert page.url.endswith("?tab=workers")
    assert client.get_work_pool("pool")["status"] == "PAUSED"
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#pool-head .status")).to_contain_text("NOT_READY")
    assert client.get_work_pool("pool")["paused"] is False


def test_detail_pages_and_forms_fit_a_phone_and_a_run_links_to_its_deployments_runs(
    server: Any, client: Any, browser: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "a-pool-with-a-rather-long-name", "type": "process"})
    client.create_work_pool({"name": "ecs-pool", "type": "ecs:push"})
    deployment = deploy(client, flow_dir, "greet", pool="a-pool-with-a-rather-long-name")
    run = client.create_run(deployment["id"], {"parameters": {"name": "x" * 120}})
    task = "arn:aws:ecs:eu-west-1:123456789012:task/a-long-cluster-name/0123456789abcdef0123"
    client.set_state(run["id"], {"type": "PENDING", "infrastructure_id": task})
    pool = "/work-pools/a-pool-with-a-rather-long-name"
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for path in (
            pool,
            f"{pool}?tab=workers",
            f"{pool}/edit",
            f"{pool}/delete",
            "/work-pools/new",
            "/work-pools/new?type=ecs:push",
            "/work-pools/ecs-pool?tab=provisioning",
            f"/deployments/{deployment['id']}/run",
            f"/flow-runs/{run['id']}",
            "/no/such/page",
        ):
            page.goto(f"{base(server)}{path}")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, path
        page.goto(f"{base(server)}/flow-runs/{run['id']}")
        page.get_by_role("link", name="Runs of greet/test").click()
        page.wait_for_url(lambda url: url.endswith("/flow-runs?deployment=greet/test"))
        expect(page.locator("#runs tbody tr")).to_have_count(1)
    finally:
        context.close()


def test_wrong_run_filters_are_each_named_beside_their_field(server: Any, page: Any) -> None:
    page.goto(f"{base(server)}/flow-runs")
    page.get_by_label("Pool").fill("no-such-pool")
    page.get_by_label("Deployment").fill("not-a-full-name")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/flow-runs?*pool=no-such-pool*")
    assert "no-such-pool" in page.locator("#err-pool").inner_text()
    assert "flow-name/deployment-name" in page.locator("#err-deployment").inner_text()
    assert page.get_by_label("Pool").get_attribute("aria-describedby") == "err-pool"
    page.goto(f"{base(server)}/flow-runs?state=DONE")
    assert "'DONE' is not a state" in page.locator("#err-state").inner_text()


def test_a_pool_paused_elsewhere_offers_resume_without_a_reload(
    server: Any, client: Any, page: Any
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools/pool")
    page.evaluate("window.notReloaded = true")
    client.update_work_pool("pool", {"paused": True})
    expect(page.locator("#pool-head .status")).to_contain_text("PAUSED")
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#pool-head .status")).to_contain_text("NOT_READY")
    assert client.get_work_pool("pool")["paused"] is False


CONTRAST = """el => {
  const rgb = c => c.match(/\\d+/g).slice(0, 3).map(Number);
  const lum = c => {
    const [r, g, b] = rgb(c).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const style = getComputedStyle(el);
  const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def test_buttons_stay_readable_in_dark_and_light(server: Any, client: Any, page: Any) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(f"{base(server)}/work-pools/pool")
        for role, name in (("link", "Edit"), ("button", "Pause"), ("link", "Delete")):
            button = page.get_by_role(role, name=name, exact=True)
            assert button.evaluate(CONTRAST) >= 4.5, (scheme, name)


def test_the_dashboards_chart_counts_the_last_24_hours_and_links_to_those_runs(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    _runs_ago(client, deployment["id"], timedelta(hours=1), timedelta(hours=2), timedelta(days=2))
    client.create_run(
        deployment["id"], {"scheduled_time": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}
    )
    # Cancelled, so no run turns Late while the page is read.
    for run in client.list_runs():
        client.cancel_run(run["id"])
    page.goto(f"{base(server)}/")
    bar = page.locator(".bars li", has=page.locator(".badge", has_text="CANCELLED"))
    # Not the run of two days ago, nor the one three hours ahead.
    assert bar.locator(".bar-count").inner_text() == "2"
    bar.get_by_role("link").click()
    page.wait_for_url("**/flow-runs?state=CANCELLED&since=day")
    expect(page.locator("#runs tbody tr")).to_have_count(2)


def test_a_live_page_says_when_it_cannot_update_and_catches_up_after(
    server: Any, client: Any, page: Any
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools")

    def no_answer(route: Any) -> None:
        if route.request.resource_type == "fetch":
            route.abort()
        else:
            route.continue_()

    page.route(f"{base(server)}/work-pools", no_answer)
    note = page.locator("#live-note")
    expect(note).to_contain_text("Not up to date")
    client.update_work_pool("pool", {"paused": True})
    page.unroute(f"{base(server)}/work-pools")
    expect(note).to_be_hidden()
    expect(page.locator('tr[data-pool="pool"] .status')).to_contain_text("PAUSED")


def test_a_pool_deleted_while_its_page_is_open_says_so(server: Any, client: Any, page: Any) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    page.goto(f"{base(server)}/work-pools/pool")
    client.delete_work_pool("pool")
    expect(page.locator("#live-note")).to_contain_text("deleted")
    page.reload()
    assert "was deleted" in page.locator("#deleted").inner_text()


def test_the_runs_filters_suggest_the_pools_and_deployments_there_are(
    server: Any, client: Any, page: Any, flow_dir: Path
) -> None:
    client.create_work_pool({"name": "pool", "type": "process"})
    client.create_work_pool({"name": "other", "type": "process"})
    deployment = deploy(client, flow_dir, "greet")
    client.create_run(deployment["id"], {})
    page.goto(f"{base(server)}/flow-runs")
    pools = page.locator("#pool-names option")
    assert [pools.nth(i).get_attribute("value") for i in range(pools.count())] == ["other", "pool"]
    assert page.locator("#deployment-names option").get_attribute("value") == "greet/test"
    assert page.get_by_label("Pool").get_attribute("list") == "pool-names"
    page.get_by_label("Deployment").fill("greet/test")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**deployment=greet%2Ftest*")
    expect(page.locator("#runs tbody tr")).to_have_count(1)


def test_a_worker_silent_for_over_a_minute_shows_offline(
    server: Any, client: Any, page: Any
) -> None:
    from sqlalchemy import update

    from push_pools.store.tables import Worker

    client.create_work_pool({"name": "pool", "type": "process"})
    client.poll("pool", {"worker_name": "busy-worker", "limit": 0}, timeout=10)
    client.poll("pool", {"worker_name": "quiet-worker", "limit": 0}, timeout=10)
    # Its last poll moved back in time, as if it had stopped two minutes ago.
    with server.store.session() as session:
        session.execute(
            update(Worker)
            .where(Worker.name == "quiet-worker")
            .values(last_heartbeat=datetime.now(UTC) - timedelta(minutes=2))
        )
    page.goto(f"{base(server)}/work-pools/pool?tab=workers")
    assert "ONLINE" in page.locator('tr[data-worker="busy-worker"] .status').inner_text()
    quiet = page.locator('tr[data-worker="quiet-worker"]')
    assert "OFFLINE" in quiet.locator(".status").inner_text()
    assert "2 min ago" in quiet.inner_text()


def test_a_push_pool_created_from_its_types_variable_form_keeps_the_values_given(
    server: Any, client: Any, page: Any
) -> None:
    page.goto(f"{base(server)}/work-pools/new")
    page.get_by_role("link", name="ecs:push").click()
    page.wait_for_url("**/work-pools/new?type=ecs:push")
    page.get_by_label("Pool name").fill("ecs-from-the-ui")
    page.get_by_label("CPU integer", exact=True).fill("two")
    page.get_by_role("button", name="Create").click()
    assert "not a whole number" in page.locator("#err-var\\.cpu").inner_text()
    page.get_by_label("CPU integer", exact=True).fill("1024")
    page.get_by_label("Region string", exact=True).fill("eu-west-1")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/work-pools/ecs-from-the-ui")
    properties = client.get_work_pool("ecs-from-the-ui")["base_job_template"]["variables"][
        "properties"
    ]
    assert (properties["cpu"]["default"], properties["region"]["default"]) == (1024, "eu-west-1")
    assert properties["memory"]["default"] == 1024  # untouched: the type's default
