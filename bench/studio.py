"""The studio at interactive speed? Latency of each interaction with the shipped models, alone and while another
session projects (the worker thread must not block the page), and the projection's steps per second through the
API; how long a projection takes to show its first progress: the first one (models loaded, contracts checked, the
loop traced), a second one with the same settings (the engine's cached projector: target within 1 s), and one of
another number of faces (a loop traced for that batch size). With --screenshot, also drives the real page in
headless chromium and saves the README's screenshot.

    python bench/studio.py [--models exported_models] [--faces examples/faces] [--screenshot docs/images/studio.png]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402

INTERACTIONS = 30


def timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    return times


def events(client) -> list[dict]:
    out = []
    with client.stream("GET", "/api/project/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                out.append({**json.loads(line[6:]), "at": time.perf_counter()})
    return out


def measure(models: str, faces: str, steps: int) -> list[dict]:
    from starlette.testclient import TestClient

    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends import open_backend
    from facemath_core.studio.app import create_app
    from facemath_core.studio.engine import Engine

    engine = Engine(open_backend(models), load_registry(), faces)
    app = create_app(engine)
    address = "http://127.0.0.1:8765"  # the address the studio answers to by default (studio/access.py)
    user, other = TestClient(app, base_url=address), TestClient(app, base_url=address)
    names = [f"example:{n}" for n in list(engine.face_files)[:8]]
    rows = []
    for label, chosen in (
        ("first projection", names),
        ("second projection, same settings", list(reversed(names))),
        ("third, another number of faces", names[:3]),
    ):
        start = time.perf_counter()
        answer = user.post("/api/project", json={"faces": chosen, "steps": steps})
        stream = events(user)
        took = stream[-1]["at"] - start
        progress = [e for e in stream if e["type"] == "progress"]
        rows.append(
            {
                "interaction": f"project {len(chosen)} faces, {steps} steps: {label}",
                "median ms": 1000 * took,
                "p90 ms": float("nan"),
                "first progress ms": 1000 * (progress[0]["at"] - start),
                "note": f"{(len(progress) - 1) / (progress[-1]['at'] - progress[0]['at']):.0f} steps/s after the "
                f"first, {sum('image' in e for e in progress)} previews; start: {answer.json()['start']}",
            }
        )
    rows.append(
        {
            "interaction": "projectors built for these 3 projections",
            "median ms": float("nan"),
            "p90 ms": float("nan"),
            "note": f"{engine.projectors.built} (the second reused the first's traced loop and checked contracts)",
        }
    )
    library = [f["name"] for f in user.get("/api/library").json()["faces"]]
    stems = [n.rsplit(".", 1)[0] for n in library]
    attribute = user.get("/api/sliders").json()["attributes"][0]
    calls = {
        "slider move (render one face)": lambda: user.post(
            "/api/slide", json={"base": library[0], "amounts": {attribute: float(np.random.uniform(-2, 2))}}
        ),
        "scrubber move (slerp, one face)": lambda: user.post(
            "/api/interpolate", json={"names": library[:3], "method": "slerp", "t": float(np.random.uniform(0, 2))}
        ),
        "expression a - b + c": lambda: user.post(
            "/api/math", json={"expression": " - ".join(stems[:2]) + " + " + stems[2]}
        ),
        "J-diagram 5x5": lambda: user.post("/api/analogy", json={"a": stems[0], "b": stems[1], "c": stems[2]}),
    }
    for label, call in calls.items():
        times = timed(call, INTERACTIONS)
        rows.append(
            {
                "interaction": label,
                "median ms": 1000 * np.median(times),
                "p90 ms": 1000 * np.percentile(times, 90),
                "note": "idle",
            }
        )
    # The same slider moves while another session projects: the worker thread must leave the page responsive.
    other.post("/api/project", json={"faces": names, "steps": 100000})
    busy = threading.Thread(target=events, args=(other,))
    busy.start()
    time.sleep(1.0)
    times = timed(calls["slider move (render one face)"], INTERACTIONS)
    other.post("/api/project/cancel", json={})  # a JSON route: the studio takes JSON only
    busy.join()
    rows.append(
        {
            "interaction": "slider move (render one face)",
            "median ms": 1000 * np.median(times),
            "p90 ms": 1000 * np.percentile(times, 90),
            "note": "while another session projects",
        }
    )
    app.state.store.close()
    return rows


def screenshot(models: str, faces: str, path: str) -> None:
    """The page after projecting six example faces, moving a slider and evaluating an expression."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server = subprocess.Popen(
        [sys.executable, "-m", "facemath", "studio", "--port", "0", "--models", models, "--faces", faces],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)

    def until(script, timeout=300):
        end = time.monotonic() + timeout
        while not driver.execute_script(script):
            if time.monotonic() > end:
                raise TimeoutError(script)
            time.sleep(0.2)

    try:
        driver.get(url)
        until("return document.querySelectorAll('#faces figure').length")
        for figure in driver.find_elements(By.CSS_SELECTOR, "#faces figure")[:6]:
            figure.click()
        driver.find_element(By.ID, "project-btn").click()
        until("return /^done/.test(document.getElementById('status').textContent)")
        until("return document.querySelector('#sliders input')")
        driver.find_element(By.CSS_SELECTOR, "#sliders input").send_keys(*[Keys.ARROW_RIGHT] * 12)
        driver.find_element(By.ID, "math-btn").click()
        until("return document.querySelectorAll('#math-result figure').length")
        driver.find_element(By.ID, "scrubber").send_keys(*[Keys.ARROW_RIGHT] * 40)
        driver.find_element(By.ID, "analogy-btn").click()
        until("return document.getElementById('analogy-image').naturalWidth")
        canvas = driver.find_element(By.ID, "brush-canvas")
        stroke = ActionChains(driver).move_to_element_with_offset(canvas, -60, 10).click_and_hold()
        for _ in range(12):
            stroke = stroke.move_by_offset(10, 0)
        stroke.release().perform()
        steps = driver.find_element(By.ID, "complete-steps")
        steps.clear()
        steps.send_keys("150")
        driver.find_element(By.ID, "complete-btn").click()
        until("return /^done/.test(document.getElementById('status').textContent)")
        until("return document.getElementById('completion-image').naturalWidth")
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(1)
        driver.save_screenshot(path)
        print(f"wrote {path}")
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--faces", default="examples/faces")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--screenshot", default=None)
    args = parser.parse_args()
    rows = measure(args.models, args.faces, args.steps)
    print_table("studio interactions (shipped models, TestClient in-process)", rows)
    write_json("studio", {"models": args.models, "interactions": INTERACTIONS, "rows": rows})
    if args.screenshot:
        screenshot(args.models, args.faces, args.screenshot)


if __name__ == "__main__":
    main()
