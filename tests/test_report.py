"""The Snakemake report of the toy run, rendered in headless Chromium: every
figure, table and metric is in it with its caption, and the figures show."""

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN
from snakemake_helpers import snakemake

pytestmark = pytest.mark.e2e
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                    "(.ci/run installs them)")


@pytest.fixture(scope="module")
def report(tiny_run):
    workdir, run, _ = tiny_run
    path = run / "report.html"
    snakemake(workdir, "--report", str(path), configs=TINY_RUN)
    return run, path


@pytest.fixture(scope="module")
def browser(report):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.get(report[1].resolve().as_uri())
    yield driver
    driver.quit()


def expected_outputs(run: Path) -> list[Path]:
    out = list((run / "figures").glob("*.png"))
    out += list((run / "figures").glob("*.html")) + list((run / "tables").glob("*.csv"))
    out += list((run / "metrics").glob("*.csv")) + list((run / "train").glob("*/seed*/history.csv"))
    return sorted(out)


@needs_chromium
def test_every_figure_table_and_metric_is_in_the_dom_with_its_caption(report, browser):
    run, _ = report
    results = browser.execute_script("return results")  # the report's data, as the page holds it
    expected = expected_outputs(run)
    assert len(expected) > 40
    for path in expected:
        key = str(path.relative_to(run.parents[1]))
        assert key in results, key
        entry = results[key]
        assert len(entry["caption"]) > 100, key
        assert entry["data_uri"].startswith(f"data:{entry['mime_type']}"), key


def open_category(driver, *names):
    from selenium.webdriver.common.by import By

    driver.get(driver.current_url.split("#")[0])  # back to the start page, state reset
    driver.refresh()
    time.sleep(0.5)
    for name in names:
        driver.find_element(By.XPATH, f"//span[normalize-space(text())='{name}']").click()
        time.sleep(0.3)


BOX = ("const r = arguments[0].getBoundingClientRect();"
       "return [r.x, r.y, r.width, r.height, arguments[0].naturalWidth || 0, window.devicePixelRatio]")


def shown(driver, previous: str | None, wait: float = 5.0):
    """(data URI, on-screen box) of the entry the report shows once a new one has
    loaded: an image, or the image inside an HTML page's frame; None when no new
    one shows (a table entry)."""
    from selenium.webdriver.common.by import By

    for _ in range(int(wait * 10)):
        imgs = [(el.get_attribute("src"), driver.execute_script(BOX, el))
                for el in driver.find_elements(By.XPATH, "//img[starts-with(@src, 'data:image')]")]
        imgs = [(src, box) for src, box in imgs if box[2] > 100 and box[4] > 0 and src != previous]
        if imgs:
            return max(imgs, key=lambda sb: sb[1][2] * sb[1][3])
        for frame in driver.find_elements(By.XPATH, "//iframe[starts-with(@src, 'data:text/html')]"):
            src, (fx, fy) = frame.get_attribute("src"), (frame.rect["x"], frame.rect["y"])
            if src == previous:
                continue
            driver.switch_to.frame(frame)
            try:
                inner = [driver.execute_script(BOX, el) for el in driver.find_elements(By.TAG_NAME, "img")]
            finally:
                driver.switch_to.default_content()
            inner = [b for b in inner if b[4] > 0]
            if inner:
                x, y, w, h, nat, dpr = inner[0]
                return src, [fx + x, fy + y, w, h, nat, dpr]
        time.sleep(0.1)
    return None


def screenshot_crop(driver, box) -> np.ndarray:
    x, y, w, h, _, dpr = box
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    return np.asarray(shot.crop((round(x * dpr), round(y * dpr), round((x + w) * dpr), round((y + h) * dpr))),
                      np.float64)


@needs_chromium
def test_every_figure_shows_in_the_screenshot(report, browser):
    """Every category and subcategory that holds a figure, every figure in it."""
    categories = browser.execute_script("return categories")
    visited = []
    for cat, subs in categories.items():
        for sub, paths in subs.items():
            if any(path.endswith((".png", ".html")) for path in paths):
                check_category(report, browser, (cat,) if sub == "Other" else (cat, sub))
                visited.append((cat, sub))
    assert {c for c, _ in visited} >= {"Figures", "Metrics", "Methods", "Animations"}, visited


def check_category(report, browser, category):
    from selenium.webdriver.common.by import By

    run, _ = report
    open_category(browser, *category)
    results = browser.execute_script("return results")
    listed = browser.execute_script("return categories")[category[0]]
    listed = listed[category[1] if len(category) > 1 else "Other"]
    seen, previous = set(), None
    # a label with two values (here: the seed) becomes a toggle; visit both sides
    for t in range(max(1, len(browser.find_elements(By.XPATH, "//fieldset//label")))):
        toggles = browser.find_elements(By.XPATH, "//fieldset//label")
        if toggles:
            toggles[t].click()
            time.sleep(0.3)
        for i in range(len(browser.find_elements(By.XPATH, "//a[@iconname='eye']"))):
            browser.find_elements(By.XPATH, "//a[@iconname='eye']")[i].click()
            found = shown(browser, previous, wait=2.0 if previous else 5.0)
            if found is None:
                continue  # a table
            previous, box = found
            key = next(k for k, v in results.items() if v["data_uri"] == previous)
            seen.add(key)
            crop = screenshot_crop(browser, box)
            assert crop.std() > 5, key  # not a blank box
            if key.endswith(".png"):
                # the pixels on screen are the file's pixels, scaled to the box
                original = Image.open(run.parents[1] / key).convert("L").resize(crop.shape[::-1], Image.BILINEAR)
                corr = np.corrcoef(crop.ravel(), np.asarray(original, np.float64).ravel())[0, 1]
                assert corr > 0.9, (key, corr)
    assert seen == {k for k in listed if k.endswith((".png", ".html"))}, category


@needs_chromium
def test_the_atlas_is_browsed_in_a_real_browser(tiny_run):
    """figures/atlas_<exp>.html from disk: every image loads, the slider moves the whole
    grid to another epoch, and a channel's page opens from its cell."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    _, run, _ = tiny_run
    page = run / "figures" / "atlas_scratch.html"
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(page.resolve().as_uri())
        cells = driver.find_elements(By.CSS_SELECTOR, "img.ev")
        assert len(cells) >= 5 * 4  # at least 4 channels of each of VGG's five blocks
        loaded = driver.execute_script(
            "return [...document.images].every(im => im.complete && im.naturalWidth > 0)")
        assert loaded, "an image of the atlas did not load"
        before = [c.get_attribute("src") for c in cells]
        driver.execute_script("const s = document.getElementById('epoch'); s.value = 0;"
                              "s.dispatchEvent(new Event('input'));")
        after = [c.get_attribute("src") for c in cells]
        assert driver.find_element(By.ID, "elabel").text == "epoch 0"
        assert sum(a != b for a, b in zip(before, after)) > len(cells) // 2  # the grid moved to epoch 0
        first = driver.find_element(By.CSS_SELECTOR, "a.cell")
        target = first.get_attribute("href").split("#")[1]
        assert not driver.find_element(By.ID, target).is_displayed()
        first.click()
        assert driver.find_element(By.ID, target).is_displayed()  # its page, with its images over the epochs
        assert len(driver.find_element(By.ID, target).find_elements(By.CSS_SELECTOR, ".row img")) >= 2
    finally:
        driver.quit()
