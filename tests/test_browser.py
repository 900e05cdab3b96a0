"""The quickstart notebook in a real browser: JupyterLab from this venv, headless
Chromium (Debian's chromium + chromium-driver, driven by Selenium), every cell
run by JupyterLab's "Run All Cells" command. The page must show the model card's
tables, a plot image and, while the first fit runs, the live status line; a
screenshot goes to build/. Then Tab completion as a user meets it: a formula
typed key by key into a cell, Tab, JupyterLab's completer listing the data
frame's columns, one accepted with the keyboard.

Everything stays on 127.0.0.1. The test fails (never skips) when the browser
or JupyterLab cannot start: `make test` installs both (scripts/setup-system.sh,
the test extra).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import chromium

# JupyterLab and Chromium are the same on every stack: the matrix leaves these to the host.
pytestmark = pytest.mark.host_only

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _imports_ssl(python: str) -> bool:
    return subprocess.run([python, "-c", "import ssl"], capture_output=True).returncode == 0


def _lab_python() -> str:
    """The Python that runs JupyterLab's server: this venv's, unless its ``ssl``
    module does not load (jupyter_server needs it; seen with a pyenv build whose
    _ssl extension came from another Python version). Then a venv of the
    system's Python with the same JupyterLab, made once under build/."""
    if _imports_ssl(sys.executable):
        return sys.executable
    venv = BUILD / "lab-venv"
    python = str(venv / "bin" / "python")
    from importlib.metadata import version

    want = f"jupyterlab=={version('jupyterlab')}"
    if not (os.path.exists(python) and subprocess.run(
            [python, "-c", "import jupyterlab"], capture_output=True).returncode == 0):
        base = next((p for p in ("/usr/bin/python3", shutil.which("python3") or "")
                     if p and _imports_ssl(p)), None)
        if base is None:
            raise RuntimeError(f"{sys.executable} cannot import ssl, which JupyterLab's server "
                               "needs, and no other python3 here can either")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", want], check=True)
    return python


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 whose python3 kernel is this interpreter."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "docs" / "examples" / "quickstart.ipynb", root / "quickstart.ipynb")
    # this venv's python as the only "python3" kernel, whatever else is installed
    spec = root / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_PATH=str(root / "jupyter"),
               JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "run"))
    proc = subprocess.Popen(
        [_lab_python(), "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
         # window.jupyterapp: run JupyterLab's own commands from the test
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(root / "lab.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (root / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium.start(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()


def test_quickstart_runs_in_jupyterlab_in_chromium(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, token = lab
    driver = browser
    driver.get(f"{base}/lab/tree/quickstart.ipynb?token={token}")
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell"))
    # the kernel is up when its status says Idle
    wait.until(lambda d: "Idle" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(lambda d: d.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.commands"
        ".isEnabled('notebook:run-all-cells'))"))
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    status_seen = ""
    deadline = time.time() + 600
    done = False
    while time.time() < deadline:
        for el in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output pre"):
            try:
                text = el.text
            except Exception:  # the output was replaced meanwhile
                continue
            if re.match(r"fitting .+: \d+\.\d s", text):
                status_seen = status_seen or text
        # Ask JupyterLab's notebook model, not the page: JupyterLab 4 renders
        # only the cells in view, and a loaded machine scrolls slowly.
        if driver.execute_script(
                "const nb = window.jupyterapp.shell.currentWidget;"
                "const code = nb.content.widgets.filter(c => c.model.type === 'code');"
                "const k = nb.sessionContext.session && nb.sessionContext.session.kernel;"
                "return code.length > 0 && k && k.status === 'idle' &&"
                " code.every(c => c.model.executionCount !== null);"):
            done = True
            break
        time.sleep(0.1)
    BUILD.mkdir(exist_ok=True)
    shown = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    if shown:  # the screenshot shows the caterpillar plot and the card above it
        driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", shown[0])
    driver.save_screenshot(str(BUILD / "browser-quickstart.png"))
    page = driver.find_element(By.TAG_NAME, "body").text
    assert done, "the notebook did not finish running: " + page[-2000:]
    errors = driver.find_elements(By.CSS_SELECTOR,
                                  "[data-mime-type='application/vnd.jupyter.error']")
    assert "Traceback" not in page and not errors, page[-3000:]
    # the model card and its tables
    cards = driver.find_elements(By.CSS_SELECTOR, ".lmermagic-model")
    assert cards, "no model card in the page"
    assert cards[0].find_elements(By.TAG_NAME, "table")
    assert "Weight ~ Time + (1 + Time | Pig)" in cards[0].text
    assert "15.74" in cards[0].text
    # a plot image (the caterpillar plot)
    images = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
    assert images and all(img.get_attribute("src").startswith("data:image/png") for img in images)
    assert images[0].size["height"] > 200
    # the live status line was seen while the first fit (R starting) ran, then cleared
    assert status_seen, "no live status line seen while the first fit ran"
    assert not driver.find_elements(By.CSS_SELECTOR, ".lmermagic-status")


# A frame whose columns "Days" and "Date" both start with "Da": the completer
# lists both (a single match would be inserted without showing the list).
SETUP = """%load_ext lmermagic
import pandas as pd
sleep = pd.DataFrame({"Reaction": [249.6, 258.7, 250.8], "Days": [0, 1, 2],
                      "Date": pd.date_range("2024-01-01", periods=3),
                      "Subject": ["308", "308", "308"]})"""
TYPED = "%lmer -d sleep Reaction ~ Da"


def _put_notebook(base: str, token: str, name: str, sources: list[str]) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": src} for src in sources]
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    body = json.dumps({"type": "notebook", "format": "json", "content": nb}).encode()
    req = urllib.request.Request(f"{base}/api/contents/{name}", data=body, method="PUT",
                                 headers={"Authorization": f"token {token}",
                                          "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30)


def _until(what: str, condition: Callable[[], Any], seconds: float = 120) -> Any:
    """Poll ``condition`` until it returns something true; fail saying ``what``."""
    deadline = time.time() + seconds
    while True:
        try:
            value = condition()
        except Exception:  # an element replaced while read: ask again
            value = None
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.2)


# The notebook model, not the page (JupyterLab 4 renders only cells in view).
_NB = "const nb = window.jupyterapp.shell.currentWidget;"
_SOURCE = _NB + "return nb.content.widgets[arguments[0]].model.sharedModel.getSource();"
_ITEMS = ("return Array.from(document.querySelectorAll("
          "'.jp-Completer:not(.lm-mod-hidden) .jp-Completer-item')).map(li => [li"
          ".querySelector('.jp-Completer-match').textContent,"
          " li.classList.contains('jp-mod-active')]);")


def test_column_completion_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.keys import Keys

    base, token = lab
    driver = browser
    _put_notebook(base, token, "completion.ipynb", [SETUP, ""])
    driver.get(f"{base}/lab/tree/completion.ipynb?token={token}")
    _until("JupyterLab's run-all command", lambda: driver.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.commands"
        ".isEnabled('notebook:run-all-cells'))"))
    _until("the notebook's kernel", lambda: driver.execute_script(
        _NB + "return nb.content.widgets.length === 2 && !!nb.sessionContext.session"
        " && nb.sessionContext.session.kernel.status === 'idle';"))
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _until("the set-up cell to run", lambda: driver.execute_script(
        _NB + "const k = nb.sessionContext.session.kernel;"
        "return k.status === 'idle' && nb.content.widgets[0].model.executionCount !== null;"),
        seconds=300)
    errors = driver.find_elements("css selector",
                                  "[data-mime-type='application/vnd.jupyter.error']")
    assert not errors, errors[0].text

    # Type into the second cell's editor as a user does, key by key.
    editor = driver.execute_script(
        _NB + "return nb.content.widgets[1].node.querySelector('.cm-content');")
    editor.click()
    _until("the second cell in edit mode", lambda: driver.execute_script(
        _NB + "return nb.content.mode === 'edit' && nb.content.activeCellIndex === 1;"))
    driver.switch_to.active_element.send_keys(TYPED)
    _until("the typed text in the cell", lambda: driver.execute_script(_SOURCE, 1) == TYPED)

    items: list[list[Any]] = []
    for _attempt in range(3):
        # JupyterLab binds Tab to the completer once the kernel's completion
        # provider is attached; before that a Tab indents. Undo and try again.
        driver.switch_to.active_element.send_keys(Keys.TAB)
        try:
            items = _until("JupyterLab's completer to list the columns",
                           lambda: driver.execute_script(_ITEMS), seconds=60)
            break
        except AssertionError:
            while driver.execute_script(_SOURCE, 1) != TYPED:
                driver.switch_to.active_element.send_keys(Keys.BACKSPACE)
    names = [name for name, _ in items]
    assert "Days" in names and "Date" in names, names
    assert not set(names) - {"Days", "Date"}, names  # the columns only, no Python names
    BUILD.mkdir(exist_ok=True)
    driver.save_screenshot(str(BUILD / "browser-completion.png"))

    # Accept "Days" with the keyboard: move to it, then Enter.
    for _ in range(len(names)):
        if [active for name, active in driver.execute_script(_ITEMS) if name == "Days"] == [
                True]:
            break
        driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    _until("the accepted column in the cell",
           lambda: driver.execute_script(_SOURCE, 1) == "%lmer -d sleep Reaction ~ Days",
           seconds=30)
    _until("the completer to close", lambda: not driver.execute_script(_ITEMS), seconds=30)


# Three models in one maketables table (issue 18): the HTML as JupyterLab renders it.
PAPER = """%load_ext lmermagic
import lmermagic, maketables as mt
sleep = lmermagic.datasets.load("sleepstudy")
cbpp = lmermagic.datasets.load("cbpp")
m1 = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep)
m2 = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
g = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                    family="binomial")
# maketables shows three decimals without trailing zeros
shown = (m1.coefs.estimate["Days"], m2.coefs.estimate["Days"], g.coefs.estimate["period2"],
         m1.r2()["r2_marginal"])
expected = [f"{v:.3f}".rstrip("0").rstrip(".") for v in shown]"""
SHOW = "mt.ETable([m1, m2, g])"


def test_paper_table_renders_in_jupyterlab(lab, browser):
    base, token = lab
    driver = browser
    _put_notebook(base, token, "paper.ipynb", [PAPER, SHOW, "print(*expected)"])
    driver.get(f"{base}/lab/tree/paper.ipynb?token={token}")
    _until("JupyterLab's run-all command", lambda: driver.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.commands"
        ".isEnabled('notebook:run-all-cells'))"))
    _until("the notebook's kernel", lambda: driver.execute_script(
        _NB + "return nb.content.widgets.length === 3 && !!nb.sessionContext.session"
        " && nb.sessionContext.session.kernel.status === 'idle';"))
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _until("every cell to run", lambda: driver.execute_script(
        _NB + "const k = nb.sessionContext.session.kernel;"
        "return k.status === 'idle' && nb.content.widgets.every("
        "c => c.model.executionCount !== null);"), seconds=400)
    errors = driver.find_elements("css selector",
                                  "[data-mime-type='application/vnd.jupyter.error']")
    assert not errors, errors[0].text
    # The rendered table (text/html output of the second cell) and the numbers
    # the kernel printed from the models themselves.
    table = _until("the rendered table", lambda: driver.execute_script(
        _NB + "const out = nb.content.widgets[1].node.querySelector('.jp-OutputArea-output');"
        "return out && out.querySelector('table') ? out.innerText : null;"))
    printed = _until("the printed numbers", lambda: driver.execute_script(
        _NB + "const out = nb.content.widgets[2].node.querySelector('.jp-OutputArea-output');"
        "return out ? out.innerText : null;"))
    for number in printed.split():
        assert number in table, (number, table[:2000])
    for label in ("Subject: groups", "Residual SD", "AIC", "herd: SD (Intercept)"):
        assert label in table, (label, table[:2000])
    BUILD.mkdir(exist_ok=True)
    driver.execute_script(
        _NB + "nb.content.widgets[1].node.scrollIntoView({block: 'start'});")
    driver.save_screenshot(str(BUILD / "browser-paper-table.png"))
