"""The studio in a real headless browser (Debian's chromium driven by selenium): open the page, project example
faces for a few steps with an optimizer and a parameter chosen on the page, move an attribute slider and check that
the rendered face changed; open a studio started with --token through its printed address.

Skipped only when chromium or chromedriver is missing and FACEMATH_REQUIRE_BROWSER is unset; CI sets it (.ci/run),
so there a missing browser fails instead of passing silently."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..support import facemath_process

CHROMEDRIVER = os.environ.get("FACEMATH_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("FACEMATH_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


def browser_missing() -> str:
    missing = [p for p in (CHROMEDRIVER, CHROMIUM) if not Path(p).exists()]
    return f"not installed: {', '.join(missing)}" if missing else ""


@pytest.fixture
def browser():
    reason = browser_missing()
    if reason and not os.environ.get("FACEMATH_REQUIRE_BROWSER"):
        pytest.skip(f"chromium {reason} (apt-get install chromium chromium-driver; CI sets FACEMATH_REQUIRE_BROWSER)")
    assert not reason, f"FACEMATH_REQUIRE_BROWSER is set but chromium is {reason}"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def start_studio(models: Path, faces: Path, *options: str, env=None) -> tuple[subprocess.Popen, str]:
    """`facemath studio` as a user starts it, on a free port; returns the process and the URL it printed."""
    process = facemath_process("studio", "--port", "0", "--models", models, "--faces", faces, *options, env=env)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/\S*", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no URL printed: {line!r} {process.stderr.read()[-2000:]}")
    return process, match.group(0)


def wait_for(driver, condition, timeout=120, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.2)
    error = driver.execute_script("return document.getElementById('error').textContent")
    raise AssertionError(f"timed out waiting for {what}; page error: {error!r}")


def project_and_slide(driver, url: str, faces: list[str], steps: int) -> tuple[str, str]:
    """Drive the page; return the slider image before and after moving a slider."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver.get(url)
    wait_for(driver, "return document.querySelectorAll('#faces figure').length", what="the example faces")
    for name in faces:
        driver.find_element(By.CSS_SELECTOR, f"#faces figure img[alt='{name}']").click()
    steps_box = driver.find_element(By.ID, "steps")
    steps_box.clear()
    steps_box.send_keys(str(steps))
    # The start is preselected as the CLI's default: the model's own encoder (the tiny export has one). That tiny
    # encoder is untrained and sends every face to nearly the same z, which would leave the attribute sliders
    # almost nothing to move along, so this run starts the papers' way.
    init = Select(driver.find_element(By.ID, "init"))
    assert init.first_selected_option.get_attribute("value") == "encoder"
    init.select_by_value("uniform")
    # An optimizer chosen on the page shows its parameters, built from its declared schema; a changed one is sent.
    optimizer = Select(driver.find_element(By.ID, "optimizer"))
    optimizer.select_by_value("momentum")
    momentum = driver.find_element(By.CSS_SELECTOR, "fieldset[data-component='momentum'] input[data-key='momentum']")
    assert momentum.is_displayed() and momentum.get_attribute("max") == "1" and momentum.get_attribute("value") == "0.9"
    momentum.clear()
    momentum.send_keys("0.5")
    sent = driver.execute_script("return projectionOptions()")
    assert sent["optimizer"] == "momentum" and sent["params"] == {"momentum": {"momentum": 0.5}}
    # Back to the default optimizer: its controls hide and nothing of them is sent (the run below is the default).
    optimizer.select_by_value("")
    assert not momentum.is_displayed() and "params" not in driver.execute_script("return projectionOptions()")
    driver.find_element(By.ID, "project-btn").click()
    wait_for(driver, "return /^done/.test(document.getElementById('status').textContent)", what="the projection")
    # The page says where the search started, as `facemath project`'s summary does (issue 27).
    status = driver.execute_script("return document.getElementById('status').textContent")
    assert status.endswith("; started at uniform random z"), status
    assert driver.execute_script("return document.getElementById('preview').src").startswith(("data:", "http"))
    library = driver.execute_script("return document.querySelectorAll('#library figure').length")
    assert library == len(faces)
    slider = "#sliders input[data-attr]"
    wait_for(driver, f'return document.querySelector("{slider}")', what="the attribute sliders")
    before = wait_for(driver, "return document.getElementById('slider-image').src", what="the first slider render")
    # A real keyboard move of the first slider, as a user would do it: ten steps to the right.
    driver.find_element(By.CSS_SELECTOR, slider).send_keys(*[Keys.ARROW_RIGHT] * 10)
    after = wait_for(
        driver,
        f"const s = document.getElementById('slider-image').src; return s !== {before!r} && s",
        what="the slider render to change",
    )
    return before, after


def brush_and_complete(driver) -> int:
    """Paint a stroke across the face on the canvas, complete it; return how many pixels were painted."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "brush-canvas")
    driver.execute_script("arguments[0].scrollIntoView()", canvas)
    stroke = ActionChains(driver).move_to_element_with_offset(canvas, -60, 0).click_and_hold()
    for _ in range(12):
        stroke = stroke.move_by_offset(10, 0)
    stroke.release().perform()
    painted = driver.execute_script("return maskValues().filter((v) => v === 0).length")
    steps = driver.find_element(By.ID, "complete-steps")
    steps.clear()
    steps.send_keys("5")
    driver.find_element(By.ID, "complete-btn").click()
    wait_for(driver, "return document.getElementById('completion-image').naturalWidth", what="the completion")
    return painted


def bad_expression(driver) -> str:
    """Evaluate a malformed expression: the page shows the one-line error, and the server still answers."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "expression")
    box.clear()
    box.send_keys("000001 -")
    driver.find_element(By.ID, "math-btn").click()
    return wait_for(driver, "const e = document.getElementById('error'); return !e.hidden && e.textContent")


def pixels(data_url: str):
    import base64
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))), np.float32)


@pytest.mark.slow
def test_project_then_slide_in_a_real_browser(browser, tiny_export, synth_faces, tmp_path):
    import numpy as np

    from facemath_core.data.images import list_images

    names = [p.name for p in list_images(synth_faces / "img_align_celeba")][:6]
    process, url = start_studio(tiny_export, synth_faces, env={"TMPDIR": str(tmp_path)})
    assert len(list(tmp_path.glob("facemath-studio-*"))) == 1  # the sessions' folder
    try:
        before, after = project_and_slide(browser, url, names, steps=15)
        painted = brush_and_complete(browser)
        error = bad_expression(browser)
        assert error == "expression column 9: the expression ends too early; a name, number or '(' is missing"
        assert browser.execute_script("return fetch('/api/menus').then((r) => r.status)") == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not list(tmp_path.glob("facemath-studio-*"))  # stopping the server removed it
    # The face really moved: a visible change of pixels, not just a new encoding of the same picture.
    assert np.abs(pixels(after) - pixels(before)).mean() > 0.5
    # A stroke 120 canvas pixels long and 28 wide, on a 256-pixel canvas over a 32-pixel face: about 15 x 4 pixels.
    assert 40 <= painted <= 150


@pytest.mark.slow
def test_a_studio_with_a_token_opens_from_its_printed_address(browser, tiny_export, synth_faces):
    """`--token`: the printed address lets the browser in (the token moves into a cookie and out of the address
    bar); the same page without the token is refused."""
    process, url = start_studio(tiny_export, synth_faces, "--token")
    try:
        assert "?token=" in url
        bare = url.split("?")[0]
        browser.get(bare)
        assert "no access token" in browser.find_element("tag name", "body").text
        browser.get(url)
        wait_for(browser, "return document.querySelectorAll('#faces figure').length", what="the example faces")
        assert browser.current_url == bare  # redirected: the token is not left in the address or the history
        assert browser.execute_script("return fetch('/api/menus').then((r) => r.status)") == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
