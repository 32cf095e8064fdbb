"""The MLflow UI of a finished sweep, seen in headless Chromium as a user would see it.

A small sweep (its grid sampled: 2 of 9 points) runs through the command line, in-process (local
Ray), against a real ``mlflow server --app-name basic-auth`` on PostgreSQL (the ``mlflow_server``
fixture), and its last lines give three links. The browser signs in with HTTP basic auth and starts
where a user starts: the UI's home page. Within 3 clicks the answer is on the screen: a click on the
experiment (MLflow 3.18 opens it in its GenAI view, whatever the experiment's tags say) and one on
"Model training" show the experiment's description, the answer's gist; a click on the comparison
run shows its Overview, whose description is the answer's paragraph. Then the printed links: the
runs view, where the sweep's comparison run is the one top-level row with its search runs nested
under it, and with the ``best_val_score`` column shown, a number on every search's row; the
comparison's Overview; and ``cost_table.md`` opened in the preview, its headline table the
artifact's cell for cell; every plot is shown byte for byte. Without credentials the UI and the
API answer 401.

The test keeps its screenshots in ``tmp_path`` (and in ``$GRADNORM_TUNE_SHOTS``, a folder, when it
is set); with ``GRADNORM_TUNE_UPDATE_SCREENSHOT=1`` it also writes ``docs/mlflow_comparison.png``
(the comparison run's Overview, shown in docs/mlflow.md).

Needs Debian's Chromium (``apt-get install chromium chromium-driver``): Playwright cannot download
its own browser here, so it is pointed at ``/usr/bin/chromium``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from servers import mlflow_credentials

from sweeps.cli import main
from sweeps.state import SweepState
from trainables import PARENT, ROLE

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "mlflow_comparison.png"  # the comparison run's Overview: the answer
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 90_000  # the UI is a heavy single-page app and the machine has 2 cores

SPEC = {
    "name": "dashboard",
    "experiment": "dashboard-test",
    "problem": {"name": "multidigits", "options": {"num_train": 192, "num_val": 64, "num_test": 64}},
    "training": {"epochs": 2, "batch_size": 64, "lr": 0.002, "seed": 0, "device": "cpu"},
    "resources": {"cpu": 1, "max_concurrent": 2},
    "searches": {
        "gradnorm": {"type": "gradnorm", "search": "grid", "alpha": [1.0]},
        "grid": {"type": "static_grid", "levels": [[1], [0.5, 1, 2], [0.5, 1, 2]], "max_trials": 2},
        "equal": {"type": "equal"},
    },
    "recommended_static": False,
}


def chromium_executable() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("Chromium is not installed (no /usr/bin/chromium); apt-get install chromium chromium-driver "
                "(Playwright's own browser download does not work here)")


def markdown_table(text: str) -> list[list[str]]:
    """The cells of a markdown table, header first, the |---| line left out."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.lstrip().startswith("|")]
    return [row for row in rows if not all(cell and set(cell) <= set("-:") for cell in row)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def printed_link(out: str, label: str) -> str:
    """The link on the sweep's last lines after ``label``."""
    (line,) = [line for line in out.splitlines() if line.strip().startswith(f"MLflow, {label}: ")]
    return line.split(": ", 1)[1].strip()


def test_the_answer_within_three_clicks_and_the_comparison_in_the_mlflow_ui(local_ray, mlflow_server, tmp_path, capsys):
    chromium = chromium_executable()
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")
    uri = mlflow_server.uri
    user, password = mlflow_server.create_user("dashboard")
    spec = tmp_path / "dashboard.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))

    with mlflow_credentials(user, password):
        assert main(["sweep", str(spec), "--storage", str(tmp_path / "runs"), "--tracking-uri", uri]) == 0
        out = capsys.readouterr().out
        (directory,) = (tmp_path / "runs").iterdir()
        state = SweepState.load(directory)
        client = MlflowClient(uri)
        comparison = client.get_run(state.comparison_run_id)
        table_md = Path(client.download_artifacts(comparison.info.run_id, "cost_table.md", str(tmp_path))).read_text()
        experiment_description = client.get_experiment(state.experiment_id).tags["mlflow.note.content"]
        artifacts = sorted(item.path for item in client.list_artifacts(comparison.info.run_id))
        plots = {name: Path(client.download_artifacts(comparison.info.run_id, name, str(tmp_path))).read_bytes()
                 for name in artifacts if name.endswith(".png")}
        search_runs = client.search_runs(
            [state.experiment_id], filter_string=f"tags.`{PARENT}` = '{comparison.info.run_id}'")
    eid, run_id = state.experiment_id, comparison.info.run_id
    run_name = f"{SPEC['name']} comparison"
    assert comparison.info.run_name == run_name and comparison.data.tags[ROLE] == "comparison"
    expected_table = markdown_table(table_md.split("\n\n")[1])  # the headline, after the first line
    assert expected_table[0][:3] == ["search", "trials", "samples, %"], table_md
    assert [row[0] for row in expected_table[1:]] == list(SPEC["searches"])
    assert {"cost_table.md", "cost_table.csv", "best_so_far.png", "pareto.png", "alpha_vs_score.png",
            "grid_cost_by_tasks.png"} <= set(artifacts)
    assert any(name.startswith("weights_") for name in plots), artifacts
    search_names = sorted(run.info.run_name for run in search_runs)
    assert len(search_names) == len(SPEC["searches"])
    answer = comparison.data.tags["mlflow.note.content"].split("\n\n")[0]
    gist = experiment_description.removeprefix(f"{SPEC['name']}: ")
    assert "found the best validation score" in answer and "% of the sampled grid's samples processed" in answer
    # the sweep's last lines: the runs view, the answer (the comparison's Overview), the cost table (sweeps.links)
    runs_link = printed_link(out, "the experiment's runs")
    answer_link = printed_link(out, "this sweep's answer (the comparison run)")
    table_link = printed_link(out, "cost_table.md")
    assert runs_link == f"{uri}/#/experiments/{eid}/runs?workflowType=machine_learning", out
    assert answer_link == f"{uri}/#/experiments/{eid}/runs/{run_id}?workflowType=machine_learning"
    assert table_link == f"{uri}/#/experiments/{eid}/runs/{run_id}/artifacts/cost_table.md?workflowType=machine_learning"

    expect = playwright.expect
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            # no credentials, or a wrong password: the UI's page and the REST API both refuse
            anonymous = browser.new_context()
            assert anonymous.request.get(f"{uri}/").status == 401
            assert anonymous.request.get(f"{uri}/api/2.0/mlflow/experiments/get?experiment_id={eid}").status == 401
            try:  # Chromium without credentials to offer ends the navigation itself
                response = anonymous.new_page().goto(f"{uri}/#/experiments/{eid}")
            except playwright.Error as error:
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(error)
            else:
                assert response.status == 401
            anonymous.close()
            impostor = browser.new_context(http_credentials={"username": user, "password": password + "x"})
            assert impostor.request.get(f"{uri}/").status == 401
            impostor.close()

            context = browser.new_context(http_credentials={"username": user, "password": password},
                                          viewport={"width": 1400, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            try:
                # where a user starts: the UI's home page; the answer within 3 clicks
                page.goto(f"{uri}/", wait_until="domcontentloaded")
                experiment = page.get_by_role("link", name=SPEC["experiment"], exact=True)
                expect(experiment).to_be_visible(timeout=TIMEOUT_MS)
                close_assistant(page)
                experiment.click()  # 1: the experiment, in MLflow's GenAI view
                expect(page).to_have_url(re.compile(rf"#/experiments/{eid}\b"), timeout=TIMEOUT_MS)
                page.get_by_text("Model training", exact=True).first.click()  # 2: its runs
                expect(page.get_by_text(gist[:60], exact=False).first).to_be_visible(timeout=TIMEOUT_MS)
                page.get_by_role("link", name=run_name, exact=True).click()  # 3: the comparison run's Overview
                expect(page.get_by_text(answer[:80], exact=False).first).to_be_visible(timeout=TIMEOUT_MS)
                close_assistant(page)
                shot(page, tmp_path, "mlflow_answer.png")

                # the printed link to the runs: one top-level row, the comparison run, its searches under it
                page.goto(runs_link, wait_until="domcontentloaded")
                link = page.get_by_role("link", name=run_name, exact=True)
                expect(link).to_be_visible(timeout=TIMEOUT_MS)
                close_assistant(page)
                # (ag-grid splits a row into its pinned and scrolling parts, all with the row's id)
                row = page.locator(f'[role="row"][row-id="{run_id}"]').filter(has=link)
                expect(row).to_have_count(1)
                for name in search_names:
                    expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
                row.locator('button[data-component-id*="runnamecellrenderer"]').click()
                for name in search_names:
                    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
                # the best_val_score column: a number on every search's row, the record's
                show_metric_column(page, "best_val_score")
                column_id = "metrics.`best_val_score`"  # (ag-grid's id of a metric's column)
                expect(page.locator(f'[role="columnheader"][col-id="{column_id}"]')).to_have_count(1)
                for search_run in search_runs:
                    cell = page.locator(f'[role="row"][row-id="{search_run.info.run_id}"] [col-id="{column_id}"]')
                    expect(cell).to_have_count(1)
                    shown = cell.inner_text().strip()
                    assert float(shown) == pytest.approx(search_run.data.metrics["best_val_score"], rel=1e-3), shown
                shot(page, tmp_path, "mlflow_runs.png")

                # the printed link to the answer: the comparison run's Overview
                page.goto(answer_link, wait_until="domcontentloaded")
                expect(page.get_by_text(answer[:80], exact=False).first).to_be_visible(timeout=TIMEOUT_MS)

                # the printed link to the cost table: its preview, the headline table cell for cell
                page.goto(table_link, wait_until="domcontentloaded")
                expect(page).to_have_url(re.compile(rf"/runs/{run_id}/artifacts/cost_table.md\b"), timeout=TIMEOUT_MS)
                close_assistant(page)
                table = page.get_by_role("table").first
                expect(table.get_by_role("row")).to_have_count(len(expected_table), timeout=TIMEOUT_MS)
                shown = [row.locator('[role="columnheader"], [role="cell"]').all_inner_texts()
                         for row in table.get_by_role("row").all()]
                assert [[cell.strip() for cell in row] for row in shown] == expected_table
                shot(page, tmp_path, "mlflow_cost_table.png")
                for name in artifacts:  # (the open file's name is also the preview's title)
                    expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=TIMEOUT_MS)

                # every plot: an <img> that has loaded the artifact's bytes
                for name, plot in plots.items():
                    page.get_by_text(name, exact=True).first.click()
                    width, height = png_size(plot)
                    page.wait_for_function(
                        "([w, h]) => [...document.images].some(i => i.complete && i.naturalWidth === w"
                        " && i.naturalHeight === h && i.src.startsWith('blob:'))",
                        arg=[width, height], timeout=TIMEOUT_MS)
                    image = page.locator("img[src^='blob:']").filter(visible=True).first
                    assert image.evaluate("i => i.naturalWidth") == width > 0
                    shown_bytes = base64.b64decode(image.evaluate(FETCH_BASE64))
                    assert shown_bytes == plot, f"the image shown is not the {name} artifact"
            except Exception:
                page.screenshot(path=tmp_path / "failure.png")
                print(f"\nscreenshot of the failure: {tmp_path / 'failure.png'} ({page.url})")
                raise
            finally:
                context.close()
        finally:
            browser.close()

    print(f"\nscreenshots: {tmp_path / 'mlflow_answer.png'}, {tmp_path / 'mlflow_runs.png'}")
    if os.environ.get("GRADNORM_TUNE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "mlflow_answer.png", SCREENSHOT)
        print(f"updated {SCREENSHOT}")


def shot(page, folder: Path, name: str) -> None:
    """A screenshot of the page in ``folder``, and in ``$GRADNORM_TUNE_SHOTS`` when it is set."""
    page.screenshot(path=folder / name)
    if os.environ.get("GRADNORM_TUNE_SHOTS"):
        Path(os.environ["GRADNORM_TUNE_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, Path(os.environ["GRADNORM_TUNE_SHOTS"]) / name)


def show_metric_column(page, metric: str) -> None:
    """Show a metric's column in the runs table: the "Columns" menu, the metric's own entry (not
    the comparison run's ``<search>/<metric>``)."""
    page.get_by_role("button", name="Columns").click()
    page.get_by_placeholder("Search columns").fill(metric)
    page.locator("span").filter(has_text=re.compile(rf"^{re.escape(metric)}$")).first.click()
    page.keyboard.press("Escape")


# the bytes behind an <img>'s blob: URL, base64-encoded
FETCH_BASE64 = """async img => {
    const blob = await (await fetch(img.src)).blob();
    return await new Promise(resolve => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result.split(',')[1]);
        reader.readAsDataURL(blob);
    });
}"""


def close_assistant(page) -> None:
    """Close the "MLflow Assistant" side panel if it is open (it takes a third of the window)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count() and close.first.is_visible():
        close.first.click()
