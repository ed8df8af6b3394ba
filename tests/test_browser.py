"""The course's widgets in a real browser: JupyterLab driven by Chromium through Playwright.

nbval runs only the kernel side of a notebook, so a widget that never renders, or a slider
whose callback raises, passes it. Here, for every notebook with a widget:

1. a small notebook is written with only the cells its widget cells need
   (tools.notebook_tools.widget_notebook: a backward slice, not a full Run All);
2. JupyterLab (headless, a free port, a token) opens it in its own workspace, runs it and
   waits for the kernel to go idle; no cell may show an error;
3. every control of every widget is moved — a slider by the keyboard on its handle, a text
   box by typing — and the widget's picture must change, with no traceback in its output.

Screenshots and JupyterLab's log go to build/browser-test/ (git-ignored). Where no Chromium
is installed the tests skip, saying how to install one; CI (.ci/run) installs it.

    CLAB_PROFILE=quick python -m pytest tests/test_browser.py -v
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from tools.notebook_analysis import widget_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ARTEFACTS = ROOT / "build" / "browser-test"
BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
INSTALL = ("no Chromium for the browser test: `sudo apt-get install chromium` (Debian/Ubuntu; or set "
           "CLAB_BROWSER to a Chromium executable) and `pip install playwright`")
CELL_TIMEOUT_S = 600          # the slowest widget notebook's cells together, on 2 busy cores
REDRAW_TIMEOUT_S = 120


def find_browser() -> str | None:
    """$CLAB_BROWSER if set (and only it), else the usual places of Chromium."""
    if os.environ.get("CLAB_BROWSER"):
        candidates = [os.environ["CLAB_BROWSER"]]
    else:
        candidates = list(BROWSERS) + [shutil.which("chromium") or ""]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def playwright_installed() -> bool:
    return importlib.util.find_spec("playwright") is not None


# CI sets CLAB_REQUIRE_BROWSER=1: there a missing browser fails the tests instead of skipping them
REQUIRED = os.environ.get("CLAB_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif((find_browser() is None or not playwright_installed()) and not REQUIRED,
                                reason=INSTALL)
WIDGET_NOTEBOOKS = [p for p in NOTEBOOKS if widget_cells(nbformat.read(p, as_version=4))]


# ----------------------------------------------------------------------------- JupyterLab

@dataclass
class Lab:
    url: str
    token: str
    notebooks: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_widget_notebooks(folder: Path) -> None:
    from tools.notebook_tools import widget_notebook

    folder.mkdir(parents=True)
    for path in WIDGET_NOTEBOOKS:
        small, _ = widget_notebook(path)
        small.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(small, folder / path.name)


@pytest.fixture(scope="module")
def lab():
    """JupyterLab on a free port with a token, serving the small widget notebooks; its settings,
    workspaces and runtime files in build/browser-test/lab (the news pop-up turned off there)."""
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    (ARTEFACTS / "screenshots").mkdir(parents=True)
    notebooks = ARTEFACTS / "notebooks"
    write_widget_notebooks(notebooks)
    home = ARTEFACTS / "lab"
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.setdefault("CLAB_PROFILE", "quick")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.allow_root=True",
               f"--ServerApp.root_dir={notebooks}", f"--LabApp.user_settings_dir={home / 'settings'}",
               f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.expose_app_in_browser=True"]
    log = open(ARTEFACTS / "jupyterlab.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start: see " + str(ARTEFACTS / "jupyterlab.log"))
                time.sleep(0.5)
        yield Lab(url, token, notebooks)
    finally:
        os.killpg(server.pid, signal.SIGTERM)          # the server stops its kernels
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if find_browser() is None or not playwright_installed():
        pytest.fail(INSTALL)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=find_browser(), headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


# ----------------------------------------------------------------------------- the page

PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = f"""() => {{ const p = {PANEL}; const k = p && p.sessionContext.session
                          && p.sessionContext.session.kernel; return !!k && k.status === 'idle'; }}"""
OPENED = f"async () => {{ const p = {PANEL}; await p.context.ready; await p.sessionContext.ready; await p.revealed; }}"
CELL_ERRORS = f"""() => {{ const out = []; {PANEL}.content.widgets.forEach((cell, i) => {{
                      if (cell.model.type !== 'code') return;
                      for (const o of cell.model.outputs.toJSON())
                          if (o.output_type === 'error') out.push(`cell ${{i}}: ${{o.ename}}: ${{o.evalue}}`); }});
                  return out; }}"""
CONTROLS = (".widget-slider .noUi-handle, .widget-text input, .widget-textarea textarea, "
            ".widget-dropdown select, .widget-checkbox input")


def pictures(widget) -> list[str]:
    """The images the widget's output shows now (their data URLs)."""
    return widget.locator(".widget-output img").evaluate_all("imgs => imgs.map(i => i.src)")


def traceback_text(widget) -> str:
    texts = widget.locator(".widget-output .jp-OutputArea-output").all_inner_texts()
    return "\n".join(t for t in texts if "Traceback" in t or "Error" in t)


def move(control) -> str:
    """Change one control the way a learner would; return what was done."""
    kind = control.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '') + ':' + e.className")
    if "noUi-handle" in kind:
        before = control.get_attribute("aria-valuenow")
        key = "ArrowLeft" if before == control.get_attribute("aria-valuemax") else "ArrowRight"
        control.press(key)
        return f"slider {before} {key}"
    if kind.startswith("select"):
        n = control.locator("option").count()
        index = (control.evaluate("e => e.selectedIndex") + 1) % n
        control.select_option(index=index)
        return f"dropdown -> option {index}"
    if ":checkbox:" in kind:
        control.click()
        return "checkbox toggled"
    if ":number:" in kind:
        control.press("ArrowUp")
        control.press("Enter")
        return "number stepped up"
    old = control.input_value()
    new = old.split()[0] if len(old.split()) > 1 else old + " 2"
    control.fill(new)
    control.press("Enter")
    return f"text {old!r} -> {new!r}"


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.stem)
def test_widgets_redraw_in_jupyterlab(browser, lab, path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    shots = ARTEFACTS / "screenshots"
    try:
        page.goto(f"{lab.url}/lab/workspaces/{path.stem}/tree/{path.name}?reset&token={lab.token}")
        page.wait_for_function(f"() => {PANEL} && {PANEL}.sessionContext", timeout=120_000)
        page.evaluate(OPENED)                                    # the notebook loaded, its kernel started
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        start = time.monotonic()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(KERNEL_IDLE, timeout=CELL_TIMEOUT_S * 1000)
        ran_s = time.monotonic() - start
        page.screenshot(path=str(shots / f"{path.stem}-0-run.png"), full_page=True)
        errors = page.evaluate(CELL_ERRORS)
        assert not errors, f"{path.name}: errors while running its widget cells: {errors}"

        widgets = page.locator(".widget-interact")
        n_widgets = widgets.count()
        assert n_widgets >= len(widget_cells(nbformat.read(path, as_version=4))), (
            f"{path.name}: {n_widgets} widget(s) rendered, expected one per widget cell")
        moved = []
        for w in range(n_widgets):
            widget = widgets.nth(w)
            widget.scroll_into_view_if_needed()
            controls = widget.locator(CONTROLS)
            assert controls.count() > 0, f"{path.name}: widget {w} has no control this test can move"
            for c in range(controls.count()):
                page.wait_for_function(KERNEL_IDLE, timeout=REDRAW_TIMEOUT_S * 1000)
                before = pictures(widget)
                assert before, f"{path.name}: widget {w} shows no picture before it is moved"
                action = move(controls.nth(c))
                deadline = time.monotonic() + REDRAW_TIMEOUT_S
                while True:
                    error = traceback_text(widget)
                    assert not error, f"{path.name}: widget {w} ({action}) raised:\n{error}"
                    now = pictures(widget)
                    if now and now != before and page.evaluate(KERNEL_IDLE):
                        break
                    assert time.monotonic() < deadline, (
                        f"{path.name}: widget {w} ({action}): its picture did not change in {REDRAW_TIMEOUT_S} s")
                    time.sleep(0.25)
                assert not traceback_text(widget), f"{path.name}: widget {w} ({action}) raised"
                if action.startswith("slider"):
                    action += f" -> {controls.nth(c).get_attribute('aria-valuenow')}"
                widget.screenshot(path=str(shots / f"{path.stem}-{w + 1}-{c + 1}-moved.png"))
                moved.append(action)
        print(f"{path.name}: cells ran in {ran_s:.1f} s; moved {moved}")
    finally:
        try:
            page.evaluate(f"async () => {{ if ({PANEL}) await {PANEL}.sessionContext.shutdown(); }}")
        finally:
            page.close()
