"""`make demo` once for the whole module: the story it prints, then the Dagster UI in a real browser on
the instance it built, what a marketer opens after `make dev`. One demo build, one webserver and one
headless Chromium serve every test here (the demo takes minutes: it is built once per test run).

The browser is Debian's chromium driven by Playwright's Python package (Playwright's own browser
download needs the internet); `.ci/run` installs both. Outside CI the browser tests skip without them;
under CI=true they fail.

    MAILROOM_SCREENSHOTS=1 pytest tests/test_ui_browser.py   # also rewrites docs/screenshots/*.png
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import pytest

from dagster_project.settings import Settings, load_settings
from dagster_project.warehouse import Warehouse

from conftest import settings_environment

# A demo-sized build: make test runs it, make test-fast leaves it out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package
SCREENSHOTS = ROOT / "docs" / "screenshots"
LOCATION = "mailroom"  # as named in workspace.yaml
CAMPAIGN = "weekly_picks"  # the demo's batch campaign with a roll-out experiment
DEMO_JOBS = ("daily_campaign_pipeline", f"{CAMPAIGN}_campaign", f"{CAMPAIGN}_rollout")
VIEWPORT = {"width": 1440, "height": 900}  # a laptop's window
STARTUP_SECONDS = 90  # the code location loads the dbt manifest and every campaign's assets

# Console errors known to be noise, each as (pattern, why it is not the page's fault); anything else
# fails the test. None so far: Dagster 1.13's pages log no error on the demo (its Apollo client logs
# deprecation *warnings*, which are not collected).
BENIGN_CONSOLE_ERRORS: list[tuple[re.Pattern[str], str]] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(f"{message} Under CI=true the browser test must run (.ci/run installs both).", pytrace=False)
    pytest.skip(message)


def screenshots_wanted() -> bool:
    return os.environ.get("MAILROOM_SCREENSHOTS", "") == "1"


class DemoInstance(NamedTuple):
    settings: Settings
    runs: list[tuple[str, str]]  # (run_id, job_name) of every run the demo recorded
    story: str  # what the demo printed


@pytest.fixture(scope="module")
def playwright_api():
    if not CHROMIUM.exists():
        unavailable(f"No Chromium at {CHROMIUM}: apt-get install --no-install-recommends chromium.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: pip install -c constraints.txt -e '.[dev]'.")
    return sync_playwright


@pytest.fixture(scope="module")
def demo_instance(tmp_path_factory, prepared_dbt) -> Iterator[DemoInstance]:
    """`make demo` on 120 customers into a temp data directory and a temp DAGSTER_HOME; the
    environment stays set for the module, so the webserver sees the same warehouse."""
    import dagster as dg

    from dagster_project.demo import main

    base = tmp_path_factory.mktemp("ui")
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    settings = Settings(data_dir=base / "data")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings_environment(settings).items():
            patch.setenv(name, value)
        patch.setenv("DAGSTER_HOME", str(home))
        story = io.StringIO()
        with contextlib.redirect_stdout(story):
            status = main(["--customers", "120", "--seed", "5", "--as-of", "2026-11-01"])
        assert status == 0, f"make demo failed; it printed:\n{story.getvalue()[-4000:]}"
        with dg.DagsterInstance.get() as instance:
            runs = [(run.run_id, run.job_name) for run in instance.get_runs()]
        yield DemoInstance(load_settings(), runs, story.getvalue())


def test_demo_tells_its_story_and_leaves_runs_of_the_code_location(demo_instance):
    import dagster as dg

    from dagster_project.code_location_runs import LOCATION_NAME

    out, data_dir = demo_instance.story, demo_instance.settings.data_dir
    assert "time rules evaluated as of 2026-11-01" in out
    # A story, not a log: Dagster's and dbt's output went to the log file it names.
    [log] = (data_dir / "logs").glob("demo-*.log")
    assert str(log) in out and "dbt" in log.read_text() and "raw.cdp_events" in log.read_text()
    assert len(out.splitlines()) < 150 and " - DEBUG - " not in out and "Concurrency" not in out
    # Each run with its own seconds per stage (the weekly run's dbt step does not overwrite the daily's).
    assert re.search(r"Daily pipeline: .*\n  run \w{8} succeeded in [\d.]+ s", out), out
    assert len(re.findall(r"    dbt build +[\d.]+ s  models and seeds built [1-9]", out)) == 3, out
    assert re.search(r"raw/cdp_events +[\d.]+ s  [1-9][\d,]* rows loaded, "
                     r"\d+ quarantined \([1-9][\d,]* in the table\)", out)
    assert "Quality gates" in out and "gx_send_eligibility" in out and "BLOCKED" not in out
    assert re.search(r"dbt tests \(\d+\) +[1-9]\d* passed", out), out
    # The weekly campaign is written offline by the rule-based writer and rendered, with a readout after
    # the engagement loop. The cart_abandonment journey replaced the trigger campaign of that name.
    assert re.search(r"weekly_picks_content +[\d.]+ s  [1-9][\d,]* content units "
                     r"\(0 by the LLM, \$0.0000\)", out), out
    assert re.search(r"weekly_picks_messages +[\d.]+ s  [1-9][\d,]* rendered", out), out
    assert re.search(r"  weekly_picks run 2026-11-01\n    variants    units a \d+, b \d+; SRM p=", out), out
    assert "cart_abandonment_content" not in out and "cart_abandonment_messages" not in out
    # The journeys run in the daily job (one line for their steps, one for their campaigns' gates); at the
    # end the fast path takes in landed signups, carts and orders on a simulated clock, and the funnels
    # show customers at different steps.
    assert re.search(r"    journeys \(\d+ steps\) +[\d.]+ s  4 journeys: ", out), out
    assert re.search(r"  journey campaigns \(\d+ checks\) +\d+ passed \(audiences and send guards\)", out), out
    assert len(re.findall(r"  fast path: .+ run \w{8} succeeded in", out)) == 2, out
    assert re.search(r"  welcome +[1-9]\d* entered; messages: hello [1-9]\d*; waiting at wait_2d [1-9]", out), out
    assert re.search(r"  cart_abandonment +[1-9]\d* entered; messages: reminder [1-9]\d*, incentive [1-9]\d*; "
                     r"waiting at wait_24h [1-9]\d*; exited: purchased_cart [1-9]", out), out
    assert "quarantined (kept in raw.quarantine" in out and "raw.cdp_events" in out
    # Then one mailed customer is erased and another gets their data; the audit chain holds.
    assert re.search(r"  demo-erase-\d+: completed \(11 steps, 2 skipped: provider not configured\)", out), out
    assert re.search(r"  demo-access-\d+: completed \(3 steps\)", out), out
    assert "scan after the erasure: nowhere" in out and re.search(r"audit chain verified: [1-9][\d,]* entries", out)
    # The weekly campaign's roll-out looked: on 120 customers its arms stay below the minimum units,
    # and the deadline (two days after the sample's day) has passed, so the remainder gets the control.
    assert re.search(r"weekly_picks_rollout +[\d.]+ s  1 run\(s\) decided now, 0 waiting, [1-9]\d* remainder", out), out
    # It ends finished, pointing at the five dashboards the last daily run wrote.
    assert "every asset is up to date" in out, out
    dashboards = data_dir / "dashboards"
    assert f"Dashboards     {dashboards}/{{marketing,ops,content,cost,compliance}}.html" in out, out
    assert all((dashboards / f"{name}.html").stat().st_size > 1_000_000 for name in ("marketing", "compliance"))

    # The runs belong to the code location `make dev` loads, as if launched from its UI.
    runs = dg.DagsterInstance.get().get_runs()
    assert {run.job_name for run in runs} >= {"daily_campaign_pipeline", "weekly_picks_campaign",
                                              "weekly_picks_rollout", "journeys_fast_path"}
    for run in runs:
        assert run.remote_job_origin.location_name == LOCATION_NAME
        assert run.tags_for_storage()[".dagster/repository"] == f"__repository__@{LOCATION_NAME}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(base_url: str, query: str) -> dict:
    request = urllib.request.Request(f"{base_url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


LOCATIONS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def wait_until_loaded(base_url: str, server: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and the code location has loaded (or failed to)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            entries = graphql(base_url, LOCATIONS_QUERY)["data"]["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
            entries = []
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"] or {}
            assert loaded.get("__typename") == "RepositoryLocation", f"code location failed to load: {loaded}"
            return
        time.sleep(1)
    pytest.fail(f"dagster-webserver did not load {LOCATION} in {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def webserver(demo_instance, tmp_path_factory) -> Iterator[str]:
    """`dagster-webserver -w workspace.yaml` on a free port, on the demo's instance; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("webserver") / "webserver.log"
    executable = Path(sys.executable).with_name("dagster-webserver")
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [str(executable), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=dict(os.environ), stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_loaded(base_url, server, log)
        # What a person's "Skip" on the first visit's community dialog records, so it covers no page.
        assert graphql(base_url, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True
        yield base_url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@dataclass
class Browser:
    """One headless Chromium page for the module; every console error and uncaught page error of
    every page it shows is kept until a test takes them."""

    page: object
    base_url: str
    errors: list[str] = field(default_factory=list)

    def listen(self) -> None:
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"console error on {self.page.url}: {message.text} ({message.location.get('url', '')})"))
        self.page.on("pageerror", lambda error: self.errors.append(f"page error on {self.page.url}: {error}"))

    def open(self, path: str, *visible: str | re.Pattern[str]):
        """Go to `path` and wait until the network is idle and each of `visible` shows."""
        page = self.page
        page.goto(self.base_url + path if path.startswith("/") else path, wait_until="networkidle")
        for text in visible:
            page.get_by_text(text).first.wait_for(state="visible")
        return page

    def _metadata_row(self, label: str):
        # Asset and check pages list metadata as table rows: label first, value last (a markdown
        # value brings its own table, hence only the row's own cells).
        key = self.page.locator(":scope > td:first-child", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        return self.page.locator("tr", has=key)

    def metadata_value(self, label: str):
        """The value cell of metadata entry `label`."""
        return self._metadata_row(label).first.locator(":scope > td").last

    def has_metadata(self, label: str) -> bool:
        self.page.locator("tr").first.wait_for()
        return self._metadata_row(label).count() > 0

    def open_metadata(self, label: str):
        """Open a markdown or table entry ("[Show Markdown]") in its dialog; the dialog."""
        self.metadata_value(label).get_by_text(re.compile(r"^\[Show")).click()
        dialog = self.page.get_by_role("dialog")
        dialog.wait_for(state="visible")
        return dialog

    def close_dialog(self) -> None:
        self.page.get_by_role("dialog").get_by_role("button", name="Close").click()
        self.page.get_by_role("dialog").wait_for(state="hidden")

    def scroll_to(self, text: str) -> None:
        """Scroll the page's own scroll container until `text` is at the top (for a screenshot)."""
        self.page.get_by_text(text, exact=True).first.evaluate("element => element.scrollIntoView({block: 'start'})")

    def screenshot(self, name: str) -> None:
        if screenshots_wanted():
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            # Dialogs fade in: finish every animation first, or the picture is half transparent.
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")

    def assert_no_console_errors(self) -> None:
        errors = [e for e in self.errors if not any(pattern.search(e) for pattern, _ in BENIGN_CONSOLE_ERRORS)]
        self.errors.clear()
        assert not errors, "the browser console shows errors:\n" + "\n".join(errors)


@pytest.fixture(scope="module")
def browser(playwright_api, webserver) -> Iterator[Browser]:
    with playwright_api() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = chromium.new_page(viewport=VIEWPORT)
            page.set_default_timeout(30_000)
            ui = Browser(page, webserver)
            ui.listen()
            yield ui
        finally:
            chromium.close()


@pytest.fixture
def ui(browser) -> Iterator[Browser]:
    """The module's browser, its error list emptied for this test."""
    browser.errors.clear()
    yield browser


@pytest.fixture(scope="module")
def campaign_pages(demo_instance) -> dict[str, str]:
    """Path of each of the campaign's asset pages, by step (content, messages, sends, readout, rollout)."""
    from dagster_project.defs.personalization import campaign_assets

    [campaign] = [c for c in campaign_assets.load_campaigns() if c.campaign_id == CAMPAIGN]
    return {step: "/assets/" + "/".join(getattr(campaign_assets, f"{step}_key")(campaign).path)
            for step in ("content", "messages", "sends", "readout", "rollout")}


def labelled(label: str, name: str) -> bool:
    """Whether a lineage graph node's label shows `name`: the graph labels an asset with its key's
    last part and, zoomed out, cuts a long one in the middle ("weekly_pi…_content")."""
    head, cut, tail = label.strip().partition("…")
    return label.strip() == name or bool(cut and name.startswith(head) and name.endswith(tail))


def assert_graph_shows(page, names: list[str], timeout: float = 30) -> None:
    nodes = page.locator("svg foreignObject")
    nodes.first.wait_for(state="visible")
    deadline = time.monotonic() + timeout
    while True:
        labels = nodes.evaluate_all("nodes => nodes.flatMap(node => [...node.querySelectorAll('*')]"
                                    "  .filter(e => !e.children.length && e.textContent.trim())"
                                    "  .map(e => e.textContent))")
        missing = [name for name in names if not any(labelled(label, name) for label in labels)]
        if not missing:
            return
        assert time.monotonic() < deadline, f"the lineage graph shows no node for {missing}; its labels: {labels}"
        page.wait_for_timeout(500)


def test_lineage_graph_shows_the_pipeline_from_ingest_to_campaigns(ui, campaign_pages):
    page = ui.open("/asset-groups", "Global asset lineage")
    assert_graph_shows(page, ["ingest", "warehouse", "experiments", "campaigns", "engagement"])
    ui.screenshot("lineage")

    # The campaigns as the marketer follows one: audience model, content, messages, roll-out, sends. The
    # campaigns group holds every journey's step campaigns too, more than the graph draws legibly at once,
    # so the lineage is filtered to the one campaign, as a marketer types it in the selection box.
    selection = 'key:"*' + CAMPAIGN + '*" and group:"campaigns"'
    page = ui.open(f"/asset-groups~{quote(selection)}")
    assert_graph_shows(page, [f"campaign_{CAMPAIGN}"] + [
        path.rsplit("/", 1)[-1] for step, path in campaign_pages.items()
        if step != "readout"  # in the experiments group
    ])
    ui.screenshot("lineage-campaigns")
    ui.assert_no_console_errors()


def test_ingest_asset_page_shows_the_rows_in_the_table(ui, demo_instance):
    with Warehouse(demo_instance.settings).connect() as conn:
        rows = int(conn.scalar("SELECT count(*) FROM raw.cdp_events"))
    assert rows > 0
    ui.open("/assets/raw/cdp_events", "table_rows")
    shown = ui.metadata_value("table_rows")
    shown.wait_for(state="visible")
    assert int(shown.inner_text().replace(",", "").strip()) == rows
    assert int(ui.metadata_value("table_rows_quarantined").inner_text().replace(",", "").strip()) > 0
    ui.scroll_to("Metadata")
    ui.screenshot("ingest-asset")
    ui.assert_no_console_errors()


def test_a_gate_shows_its_expectations_and_their_results(ui):
    page = ui.open("/assets/marts/send_eligibility?view=checks&checkDetail=gx_send_eligibility",
                   "This is a blocking asset check.", re.compile(r"All \d+ expectations passed on [\d,]+ rows"))
    assert page.get_by_text("Passed", exact=True).first.is_visible()
    assert int(ui.metadata_value("rows_validated").inner_text().replace(",", "")) > 0
    dialog = ui.open_metadata("results")
    table = dialog.locator("table").first
    table.wait_for()
    header = [text.strip() for text in table.locator("th").all_inner_texts()]
    assert "expectation" in header and "result" in header, header
    result = header.index("result")
    results = [row.locator("td").nth(result).inner_text().strip() for row in table.locator("tbody tr").all()]
    assert results and set(results) == {"pass"}, results
    ui.screenshot("gate-results")
    ui.close_dialog()
    ui.assert_no_console_errors()


def test_a_campaign_shows_its_audience_content_preview_and_readout(ui, campaign_pages):
    ui.open(campaign_pages["messages"], "audience_size")
    assert int(ui.metadata_value("messages_in_run").inner_text().replace(",", "")) > 0
    assert "no_explicit_consent" in ui.metadata_value("suppressed_by_reason").inner_text()
    ui.scroll_to("Metadata")
    ui.screenshot("campaign-messages")

    ui.open(campaign_pages["content"], "content_units")
    preview = ui.open_metadata("preview")
    assert preview.get_by_text(re.compile(r"^Subject:")).count() > 0
    ui.close_dialog()

    ui.open(campaign_pages["readout"], "primary_metric")
    readout = ui.open_metadata("readout")
    readout.get_by_text(re.compile(r"Variants against the control")).wait_for()
    assert readout.locator("table tbody tr").count() > 0
    ui.screenshot("campaign-readout")
    ui.close_dialog()
    ui.assert_no_console_errors()


def require_metadata(ui: Browser, label: str) -> None:
    if not ui.has_metadata(label):
        ui.assert_no_console_errors()
        pytest.fail(f"metadata {label!r} is missing from {ui.page.url}")


def test_a_campaign_readout_shows_its_performance_table(ui, campaign_pages):
    ui.open(campaign_pages["readout"], "primary_metric")
    require_metadata(ui, "performance")
    # A table value (dg.MetadataValue.table) shows inline, a markdown one behind "[Show Markdown]".
    cell = ui.metadata_value("performance")
    table = cell.locator("table").first
    if not table.is_visible():
        table = ui.open_metadata("performance").locator("table").first
    table.wait_for(state="visible")
    rows = table.locator("tbody tr").all_inner_texts()
    assert rows, "the performance table has no rows"
    assert any("holdout" in row for row in rows), rows  # each variant beside the holdout
    if screenshots_wanted():
        # The inline table wraps every cell in a 1440-pixel window: a full-HD one shows its columns.
        ui.page.set_viewport_size({"width": 1920, "height": 1080})
        ui.scroll_to("performance")
        ui.screenshot("campaign-performance")
        ui.page.set_viewport_size(VIEWPORT)
    ui.assert_no_console_errors()


def test_a_campaign_shows_a_preview_of_its_emails(ui, campaign_pages):
    ui.open(campaign_pages["messages"], "audience_size")
    require_metadata(ui, "preview_index")
    index = Path(ui.metadata_value("preview_index").inner_text().strip())
    count = int(ui.metadata_value("preview_count").inner_text().replace(",", ""))
    assert index.is_file() and count > 0, (index, count)
    # The index lists every preview and links its HTML; the marketer opens one from there.
    page = ui.open(index.as_uri(), f"Previews of campaign {CAMPAIGN}")
    links = page.get_by_role("link", name="HTML", exact=True)
    assert links.count() == count
    ui.screenshot("email-previews-index")
    links.first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(".html") and page.url != index.as_uri()
    assert page.get_by_text(re.compile("unsubscribe", re.IGNORECASE)).count() > 0
    ui.screenshot("email-preview")
    ui.assert_no_console_errors()


def test_runs_list_shows_the_demos_runs_in_the_code_location(ui, demo_instance):
    assert {job for _, job in demo_instance.runs} >= set(DEMO_JOBS), demo_instance.runs
    page = ui.open("/runs", *DEMO_JOBS)
    for run_id, _ in demo_instance.runs:
        page.locator(f'a[href="/runs/{run_id}"]').first.wait_for(state="visible")
    # The runs belong to the `mailroom` code location, so each one's job links to its page there
    # (a run without that origin shows its job name without a link).
    for job in DEMO_JOBS:
        assert page.locator(f'a[href="/locations/{LOCATION}/jobs/{job}"]').count() > 0, job
    ui.screenshot("runs")
    ui.assert_no_console_errors()


DASHBOARD_CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => ({
    id: plot.id,
    drawn: plot.querySelectorAll('.main-svg').length > 0,
    points: (plot.data || []).reduce((sum, trace) => sum + ['z', 'y', 'values', 'x']
        .map(axis => trace[axis]).filter(values => values && values.length)
        .slice(0, 1).reduce((n, values) => n + values.flat().length, 0), 0)}))"""


def test_dashboards_open_with_no_network_and_every_chart_shows_data(ui, demo_instance):
    from dagster_project.analytics.dashboards import DASHBOARDS

    folder = demo_instance.settings.data_dir / "dashboards"
    ui.open("/assets/analytics/dashboards", "marketing_dashboard")
    assert ui.metadata_value("marketing_dashboard").inner_text().strip().endswith("marketing.html")
    # A browser with no network at all: the charts' JavaScript must be in the file.
    context = ui.page.context.browser.new_context(offline=True, viewport=VIEWPORT)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        for name, title in DASHBOARDS.items():
            page.goto((folder / f"{name}.html").as_uri(), wait_until="load")
            page.get_by_role("heading", name=title, exact=True).wait_for(state="visible")
            expected = int(page.locator("main").get_attribute("data-charts"))
            charts = page.evaluate(DASHBOARD_CHARTS)
            assert expected >= 2 and len(charts) == expected, (name, expected, charts)
            assert all(chart["drawn"] and chart["points"] > 0 for chart in charts), (name, charts)
            if name == "marketing" and screenshots_wanted():
                page.screenshot(path=str(SCREENSHOTS / "dashboard-marketing.png"), full_page=True)
        assert not errors, errors
    finally:
        context.close()
    ui.assert_no_console_errors()
