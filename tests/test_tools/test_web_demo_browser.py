"""tools/demo/web_demo.py in a real browser: Debian's chromium (headless) driven by Selenium through
chromium-driver, against a server in a subprocess (tiny random-weight model, 127.0.0.1).

Skipped only when no browser is installed (``apt-get install chromium chromium-driver``)."""
import json
import os
import os.path as osp
import shutil
import time
import urllib.request

import numpy as np
import pytest

from web_demo_server import WebDemoServer, read_video, synthetic_video

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')
DRIVER = shutil.which('chromedriver') or next((p for p in ('/usr/lib/chromium/chromedriver', ) if osp.isfile(p)), None)
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
if BROWSER is None or DRIVER is None:
    pytest.skip('no browser for the web demo test: install the Debian packages chromium chromium-driver '
                '(apt-get install chromium chromium-driver)', allow_module_level=True)
webdriver = pytest.importorskip('selenium.webdriver')
from selenium.webdriver.common.by import By  # noqa: E402

PALETTE = [(230, 25, 75), (60, 180, 75)]  # the first two colours of soc_mm.visualization.PALETTE
SIZE = (144, 192)
WAIT_S = 180  # bound of every wait for the page


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = WebDemoServer(str(tmp_path_factory.mktemp('web_demo_browser')))
    yield srv
    srv.stop()


def new_browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    os.environ.setdefault('SE_OFFLINE', 'true')  # never let selenium-manager look for a driver online
    options = Options()
    options.binary_location = BROWSER
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                '--window-size=1400,1700', '--no-first-run', '--disable-extensions'):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope='module')
def browser():
    driver = new_browser()
    yield driver
    driver.quit()


def wait_for(condition, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


def open_page(driver, url):
    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#upload input[type=file]'), 'the upload field')


def upload(driver, path):
    clear = driver.find_elements(By.CSS_SELECTOR, '#upload button[aria-label="Clear"]')
    if clear:  # a previous file: remove it first
        clear[0].click()
    field = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#upload input[type=file]'), 'the upload field')
    field[0].send_keys(path)
    name = osp.basename(path)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f'#upload td.filename[aria-label="{name}"]'),
             f'{name} to be uploaded')


def run(driver, expressions):
    box = driver.find_element(By.CSS_SELECTOR, '#expressions textarea')
    box.clear()
    box.send_keys(expressions)
    driver.find_element(By.ID, 'run').click()


def wait_status(driver, previous=''):
    def status():
        text = driver.find_element(By.ID, 'status').text
        return text if 'frames' in text and text != previous else None
    return wait_for(status, 'the result')


def fetch(url, path):
    assert url.startswith('http://127.0.0.1:')
    with urllib.request.urlopen(url, timeout=60) as response, open(path, 'wb') as f:
        f.write(response.read())
    return path


def result_files(driver, out_dir):
    """(result video RGB frames [T, H, W, 3], RLE json dict) shown in the page."""
    src = driver.find_element(By.CSS_SELECTOR, '#result_video video').get_attribute('src')
    video = read_video(fetch(src, osp.join(out_dir, 'result.mp4')))
    links = [a.get_attribute('href') for a in driver.find_elements(By.CSS_SELECTOR, '#downloads a')]
    json_url = next(u for u in links if u.endswith('_masks_rle.json'))
    with open(fetch(json_url, osp.join(out_dir, 'masks.json'))) as f:
        return video, json.load(f)


def decoded_masks(rle):
    from soc_mm.structures.mask import decode_mask
    return [np.stack([decode_mask(r) for r in e['masks']]) for e in rle['expressions']]


def test_upload_two_expressions_colours_where_the_masks_are(server, browser, tmp_path):
    # seed 4: both expressions' masks (random weights) have pixels of their own
    frames = synthetic_video(str(tmp_path / 'shapes.mp4'), seed=4, num_frames=6, size=SIZE).astype(np.float32)
    open_page(browser, server.url)
    upload(browser, str(tmp_path / 'shapes.mp4'))
    run(browser, 'the red circle\nthe square on the left')
    status = wait_status(browser)
    assert status.startswith('shapes.mp4: 6 frames (192x144) x 2 expression(s)')
    assert '0: the red circle' in status and '1: the square on the left' in status
    video, rle = result_files(browser, str(tmp_path))
    assert video.shape == frames.shape
    assert [e['expression'] for e in rle['expressions']] == ['the red circle', 'the square on the left']
    masks = decoded_masks(rle)
    assert all(m.shape == frames.shape[:3] for m in masks)
    out = video.astype(np.float32)
    rows = np.arange(SIZE[0])[None, :, None] >= int(0.4 * SIZE[0])  # below the legend
    painted = [0.5 * frames + 0.5 * np.array(color, np.float32) for color in PALETTE]  # alpha 0.5
    from scipy.ndimage import binary_erosion
    inner = np.ones((1, 3, 3), bool)  # away from region borders (yuv420p halves the colour resolution)
    for k in range(2):
        only_k = binary_erosion(masks[k] & ~masks[1 - k], inner) & rows
        assert only_k.sum() > 30, f'expression {k} has (almost) no pixels of its own to check'
        own = np.abs(out[only_k] - painted[k][only_k]).mean()
        other = np.abs(out[only_k] - painted[1 - k][only_k]).mean()
        print(f'expression {k}: {only_k.sum()} pixels, mean |diff| to its colour {own:.1f}, to the other {other:.1f}')
        assert own < 8 and other > 30, (k, own, other)
    unpainted = binary_erosion(~masks[0] & ~masks[1], inner) & rows
    if unpainted.sum() > 200:
        assert np.abs(out[unpainted] - frames[unpainted]).mean() < 8
    # the page with a result (copied by hand to docs/web_demo.png)
    browser.save_screenshot(str(tmp_path / 'web_demo.png'))
    print(f'screenshot: {tmp_path / "web_demo.png"}')


def test_corrupt_upload_shows_the_error_then_a_valid_run_works(server, browser, tmp_path):
    bad = tmp_path / 'broken.mp4'
    bad.write_bytes(os.urandom(3000))
    synthetic_video(str(tmp_path / 'good.mp4'), num_frames=4, size=SIZE)
    open_page(browser, server.url)
    upload(browser, str(bad))
    run(browser, 'the red circle')
    message = 'broken.mp4: cannot open the video (unreadable, truncated or unsupported format).'
    wait_for(lambda: message in browser.find_element(By.TAG_NAME, 'body').text, 'the error message in the page')
    upload(browser, str(tmp_path / 'good.mp4'))
    run(browser, 'the blue square')
    status = wait_status(browser)
    assert status.startswith('good.mp4: 4 frames (192x144) x 1 expression(s)') and '0: the blue square' in status
    video, rle = result_files(browser, str(tmp_path))
    assert len(video) == 4 and rle['video'] == 'good'


def test_two_sessions_at_once_get_their_own_results(server, tmp_path):
    drivers = [new_browser(), new_browser()]
    try:
        jobs = [('first', 5, 'the red circle\nthe green triangle'), ('second', 3, 'the square on the left')]
        for driver, (name, num_frames, expressions) in zip(drivers, jobs):
            synthetic_video(str(tmp_path / f'{name}.mp4'), seed=num_frames, num_frames=num_frames, size=SIZE)
            open_page(driver, server.url)
            upload(driver, str(tmp_path / f'{name}.mp4'))
        for driver, (_name, _n, expressions) in zip(drivers, jobs):  # both requests in flight together
            run(driver, expressions)
        for driver, (name, num_frames, expressions) in zip(drivers, jobs):
            status = wait_status(driver)
            lines = expressions.split('\n')
            assert status.startswith(f'{name}.mp4: {num_frames} frames (192x144) x {len(lines)} expression(s)')
            assert all(f'{k}: {text}' in status for k, text in enumerate(lines))
            out_dir = tmp_path / f'out_{name}'
            out_dir.mkdir()
            video, rle = result_files(driver, str(out_dir))
            assert len(video) == num_frames and rle['video'] == name
            assert [e['expression'] for e in rle['expressions']] == lines
    finally:
        for driver in drivers:
            driver.quit()
