"""The Airflow 3 UI as a person uses it, in Debian's headless Chromium (Selenium): modelhaul's connection
forms show only the fields that mean something, with placeholders, and a pasted multi-line kubeconfig
is stored intact and tests green. A failing test leaves a screenshot in ``test-artifacts/``
(``MODELHAUL_TEST_ARTIFACTS`` moves it)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.airflow import AIRFLOW, AIRFLOW_ENV, ROOT, airflow_cli
from tests.fixtures.registry import free_port

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("MODELHAUL_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,2000")


@pytest.fixture(scope="module")
def api_server(airflow_home: Path) -> Iterator[str]:
    """Airflow's api-server on this session's metadata DB, everyone an admin (no login page)."""
    port = free_port()
    env = {**os.environ, **AIRFLOW_ENV, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    log = open(airflow_home / "api-server.log", "ab")  # noqa: SIM115 - the child's, closed below
    proc = subprocess.Popen([str(AIRFLOW), "api-server", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/api/v2/version", timeout=2).ok:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, \
                (airflow_home / "api-server.log").read_text(errors="replace")[-2000:]
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/bootstrap.sh installs them)")
    profile = tempfile.mkdtemp(prefix="modelhaul-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.binary_location = chromium
    b = webdriver.Chrome(options=options, service=Service(driver))
    b.implicitly_wait(10)
    try:
        yield b
    finally:
        b.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def screenshot_on_failure(browser: Any, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        (ARTIFACTS / f"{name}.html").write_text(browser.page_source)
        raise


def add_connection_form(browser: Any, base: str, hook_name: str) -> None:
    """Open "Add Connection", pick the type by its name, open the extra fields."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/connections")
    browser.find_element(By.XPATH, "//button[normalize-space()='Add Connection']").click()
    box = browser.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    box.click()
    box.send_keys(hook_name)
    next(o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == hook_name).click()
    browser.find_element(By.XPATH, "//*[normalize-space()='Extra Fields']").click()
    time.sleep(0.5)


def fields(browser: Any) -> dict[str, Any]:
    """The form's inputs by name (standard fields: ``host``...; extra fields: ``element_<name>``)."""
    from selenium.webdriver.common.by import By

    return {e.get_attribute("name"): e for e in browser.find_elements(By.CSS_SELECTOR, "input, textarea")
            if e.get_attribute("name")}


FORMS = {
    "OCI registry (modelhaul)": {"shown": {"host": "registry.example.com:5000", "login": "robot$ci",
                                           "password": "password or access token"},
                                 "hidden": {"port", "schema"}, "extras": {"element_ca_file"}},
    "MLflow tracking (modelhaul)": {"shown": {"host": "https://mlflow.example.com:5000"},
                                    "hidden": {"port", "schema", "element_scheme"},
                                    "extras": {"element_tracking_uri", "element_token"}},
    "Kubernetes cluster (modelhaul)": {"shown": {}, "hidden": {"host", "port", "schema", "login", "password"},
                                       "extras": {"element_kube_config", "element_kube_config_path"}},
}


@pytest.mark.parametrize("hook_name", sorted(FORMS))
def test_each_connection_form_shows_only_fields_that_mean_something(api_server, browser, hook_name):
    want = FORMS[hook_name]
    with screenshot_on_failure(browser, f"form-{hook_name.split()[0].lower()}"):
        add_connection_form(browser, api_server, hook_name)
        got = fields(browser)
        for name, placeholder in want["shown"].items():
            assert got[name].get_attribute("placeholder") == placeholder, name
        assert not want["hidden"] & set(got), f"{hook_name}: fields that mean nothing here: {want['hidden'] & set(got)}"
        assert want["extras"] <= set(got), f"{hook_name}: missing {want['extras'] - set(got)}"
        for name, e in got.items():  # an extra text field offers examples as its placeholder
            if name.startswith("element_") and e.get_attribute("type") == "text":
                assert e.get_attribute("list"), f"{name} has no examples"


def test_a_pasted_kubeconfig_keeps_its_lines_and_tests_green(api_server, browser, kube_emulator):
    from selenium.webdriver.common.by import By

    inline = Path(kube_emulator.kubeconfig).read_text()
    conn_id = f"kube_pasted_{os.getpid()}"
    with screenshot_on_failure(browser, "kubeconfig-pasted"):
        add_connection_form(browser, api_server, "Kubernetes cluster (modelhaul)")
        got = fields(browser)
        assert got["element_kube_config"].tag_name == "textarea"  # not a one-line password input
        browser.find_element(By.CSS_SELECTOR, "input[name=connection_id]").send_keys(conn_id)
        got["element_kube_config"].click()
        browser.execute_cdp_cmd("Input.insertText", {"text": inline})  # as a paste: the whole text at once
        browser.find_element(By.XPATH, "//button[normalize-space()='Save']").click()
        deadline = time.monotonic() + 60
        while True:  # read back by a fresh process from the metadata DB, as a worker would
            got_back = airflow_cli("connections", "get", conn_id, "-o", "json", check=False)
            if got_back.returncode == 0 and conn_id in got_back.stdout:
                break
            assert time.monotonic() < deadline, "the connection was not saved: " + got_back.stderr[-500:]
            time.sleep(0.5)
    row = json.loads(got_back.stdout)
    row = row[0] if isinstance(row, list) else row
    extra = row.get("extra") or row.get("extra_dejson") or "{}"
    stored = (json.loads(extra) if isinstance(extra, str) else extra)["kube_config"]
    assert stored.strip() == inline.strip() and stored.count("\n") >= inline.strip().count("\n")
    tested = airflow_cli("connections", "test", conn_id, check=False, env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
    assert tested.returncode == 0 and "Connection success!" in tested.stdout, tested.stdout + tested.stderr
