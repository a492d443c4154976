"""The page at `/` in a real headless browser (Debian's chromium, driven by Selenium through
/usr/bin/chromedriver: nothing is downloaded): a token, the collection picker, a question whose
answer streams in, a citation's preview with the quoted lines highlighted, the memory's status and
an ingest job. Skipped, saying why, where no chromium or chromedriver is installed
(`apt-get install chromium chromium-driver`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import uvicorn

from msa_agent.serve import create_app
from msa_agent.store.tokens import create_token

CHROMIUM = os.environ.get("MSA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MSA_CHROMEDRIVER", "/usr/bin/chromedriver")
Q_LEGAL = "How much does the Buyer pay the Supplier per quarter?"

pytestmark = pytest.mark.slow


def _browser_missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"no {path}: the browser test needs Debian's {package} (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def webdriver_module():
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    return pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -r requirements.txt)")


@pytest.fixture
def browser(webdriver_module, tmp_path: Path):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver_module.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver_module.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def served(engine, make_store, tmp_path: Path):
    """A live server (auth on, one allowed root) over a fresh two-collection store."""
    st = make_store()
    extra = tmp_path / "allowed" / "notes"
    extra.mkdir(parents=True)
    (extra / "spares.txt").write_text("The spare pump impeller is kept in cabinet 7 of the east plant room.\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, st, allow_roots=[tmp_path / "allowed"]), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    _, token = create_token(st, ["legal", "ops"])
    yield {"url": f"http://127.0.0.1:{port}", "token": token, "store": st, "extra": extra}
    server.should_exit = True
    thread.join(30)


def _call(url: str, path: str, token: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_the_page_asks_streams_cites_previews_and_shows_status_and_jobs(browser, served, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, token, st = served["url"], served["token"], served["store"]
    job = _call(url, "/v1/ingest", token, {"path": str(served["extra"]), "collection": "ops"})
    deadline = time.monotonic() + 60
    while _call(url, f"/v1/jobs/{job['id']}", token)["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the ingest job did not finish"
        time.sleep(0.1)
    want = _call(url, "/v1/ask", token, {"question": Q_LEGAL, "collection": "legal"})
    quoted = [i for i, c in enumerate(want["citations"]) if c.get("quote")]
    assert quoted, "the legal question should cite a quoted line"

    wait = WebDriverWait(browser, 30)
    browser.get(url + "/")
    assert browser.title == "msa"
    browser.find_element(By.ID, "token").send_keys(token, Keys.TAB)  # change: status, collections, jobs load

    # the collection picker holds the token's collections (no "all": a two-collection token names one)
    wait.until(lambda d: [o.get_attribute("value") for o in Select(d.find_element(By.ID, "collection")).options]
               == ["legal", "ops"])
    Select(browser.find_element(By.ID, "collection")).select_by_value("legal")

    # the memory's status and the finished ingest job
    status = st.status()
    wait.until(EC.text_to_be_present_in_element((By.ID, "st-documents"), f"{status['documents']:,}"))
    assert browser.find_element(By.ID, "st-collections").text == "legal, ops"
    assert browser.find_element(By.ID, "st-tokens").text == f"{status['tokens']:,}"
    job_row = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"#jobs li.job[data-job='{job['id']}']")))
    assert str(served["extra"]) in job_row.text and "[ops]" in job_row.text and job_row.text.startswith("ok")

    # ask: the answer streams in, then the sources and the status line
    browser.find_element(By.ID, "q").send_keys(Q_LEGAL)
    browser.find_element(By.ID, "ask").click()
    wait.until(lambda d: "routing" in d.find_element(By.ID, "status").text or "error" in d.find_element(By.ID, "status").text)
    assert "error" not in browser.find_element(By.ID, "status").text
    answer = browser.find_element(By.ID, "answer")
    assert answer.text == want["answer"].strip() and int(answer.get_attribute("data-tokens")) >= 1
    links = browser.find_elements(By.CSS_SELECTOR, "#sources a.cite-link")
    assert len(links) == len(want["citations"])

    shots = Path(os.environ.get("MSA_SCREENSHOT_DIR") or tmp_path)
    assert browser.save_screenshot(str(shots / "page-answer.png"))

    # a citation opens its document with the quoted lines highlighted
    cite = want["citations"][quoted[0]]
    links[quoted[0]].click()
    wait.until(EC.visibility_of_element_located((By.ID, "preview")))
    marks = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview-text mark"))
    assert "\n".join(m.text for m in marks) == cite["quote"]
    assert all(m.is_displayed() for m in marks)  # scrolled into view
    assert browser.find_element(By.ID, "preview-title").text == cite["path"]
    assert browser.find_element(By.ID, "preview-where").text == cite["anchor"]
    doc_text = st.live_documents("legal")
    assert any(cite["quote"] in d.text for d in doc_text if d.id == cite["doc_id"])
    assert browser.save_screenshot(str(shots / "page-preview.png"))
    browser.find_element(By.ID, "preview-close").click()
    wait.until(EC.invisibility_of_element_located((By.ID, "preview")))

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
