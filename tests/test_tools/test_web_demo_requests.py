"""soc_mm.apis.web_demo in-process (no server): pixel limits read from image / video headers, the
lifetime of result folders (fake clock), concurrent requests with their own selection settings."""
import io
import os
import os.path as osp
import struct
import threading
import types
import zipfile
import zlib

import numpy as np
import pytest

from soc_mm.apis.web_demo import Limits, WebDemo, count_video_frames, extract_zip_frames, parse_expressions
from web_demo_server import synthetic_video, tiny_model_files


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says width x height and whose pixel data is garbage: only a reader that
    stops at the header gets its size; decoding it fails."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', b'garbage') + chunk(b'IEND', b'')


def png(width: int, height: int) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.new('RGB', (width, height), (200, 30, 30)).save(buffer, format='PNG')
    return buffer.getvalue()


# ---------------------------------------------------------------------- expressions
def test_expressions_are_bounded_before_tokenizing():
    """A 3 MB expression took the tokenizer ~13 CPU minutes and 3.6 GB: each expression is at most
    ``max_expression_chars`` characters and the whole text is bounded before it is split."""
    assert parse_expressions('the red circle\n\n  the cat  \n', 10, 20) == ['the red circle', 'the cat']
    with pytest.raises(ValueError, match=r'^Expression 2 has 21 characters, at most 20 are taken'):
        parse_expressions('the red circle\n' + 'x' * 21, 10, 20)
    with pytest.raises(ValueError, match=r'^The expressions text has 3000000 characters'):
        parse_expressions('the red circle ' * 200000, 10, Limits.max_expression_chars)
    with pytest.raises(ValueError, match=r'^11 expressions, at most 10'):
        parse_expressions('a\n' * 11, 10, 20)


# ---------------------------------------------------------------------- pixel limits
def test_zip_pixel_bomb_is_refused_from_the_header(tmp_path):
    path = tmp_path / 'bomb.zip'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('f0.png', png(32, 32))
        archive.writestr('big.png', png_header_only(2048, 2048))  # decoding it would fail: only the header is read
    limits = Limits(max_frame_pixels=1920 * 1080)
    with pytest.raises(ValueError) as info:
        extract_zip_frames(str(path), 'bomb.zip', str(tmp_path / 'frames'), limits)
    assert str(info.value) == ("bomb.zip: frame 'big.png' is 2048x2048 pixels (4.19 megapixels), more than the "
                               'limit of 2.07 megapixels per frame (max_frame_pixels=2073600): downscale the video.')
    assert not osp.exists(tmp_path / 'frames')  # nothing extracted
    # the real thing: a 0.4 KB zip holding a 2048x2048 PNG
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('big.png', png(2048, 2048))
    assert osp.getsize(path) < 20000
    with pytest.raises(ValueError, match=r"frame 'big.png' is 2048x2048 pixels"):
        extract_zip_frames(str(path), 'bomb.zip', str(tmp_path / 'frames'), limits)


def test_zip_pixels_per_request_and_unreadable_members(tmp_path):
    path = tmp_path / 'many.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        for t in range(5):
            archive.writestr(f'{t}.png', png_header_only(100, 100))
    with pytest.raises(ValueError) as info:
        extract_zip_frames(str(path), 'many.zip', str(tmp_path / 'frames'),
                           Limits(max_frame_pixels=10000, max_request_pixels=40000))
    assert str(info.value) == ('many.zip: 5 frames of 0.1 megapixels in all (frames x width x height), more than the '
                               'limit of 0.0 megapixels per request (max_request_pixels=40000): trim or downscale '
                               'the video.')
    out_dir, names = extract_zip_frames(str(path), 'many.zip', str(tmp_path / 'frames'),
                                        Limits(max_frame_pixels=10000, max_request_pixels=50000))
    assert names == ['0', '1', '2', '3', '4'] and len(os.listdir(out_dir)) == 5
    with zipfile.ZipFile(tmp_path / 'junk.zip', 'w') as archive:
        archive.writestr('a.png', b'not an image')
    with pytest.raises(ValueError, match=r"^junk.zip: frame 'a.png' is not a readable JPEG/PNG/BMP/WebP image"):
        extract_zip_frames(str(tmp_path / 'junk.zip'), 'junk.zip', str(tmp_path / 'f2'), Limits())


def test_zip_members_skipped_are_named_and_a_damaged_member_is_an_error(tmp_path):
    path = tmp_path / 'mixed.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('00000.png', png(8, 8))
        archive.writestr('notes.txt', b'x')
        archive.writestr('00001.gif', b'GIF89a')
        archive.writestr('00002.png', png(8, 8))
    notes = []
    _, names = extract_zip_frames(str(path), 'mixed.zip', str(tmp_path / 'f'), Limits(), notes=notes)
    assert names == ['00000', '00002']
    assert notes == ["mixed.zip: 2 member(s) that are not .jpg/.jpeg/.png/.bmp/.webp frames (or are hidden) were "
                     "skipped: 'notes.txt', '00001.gif'."], notes
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buffer, 'PNG')
    damaged = tmp_path / 'crc.zip'
    with zipfile.ZipFile(damaged, 'w') as archive:  # stored: the member's bytes are the PNG's
        archive.writestr('00000.png', buffer.getvalue())
    data = bytearray(damaged.read_bytes())
    at = data.index(b'IEND') - 100  # far past the header the size is read from: only the copy reads it
    data[at] ^= 0xff
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"^crc.zip: the member '00000.png' cannot be extracted \(Bad CRC-32"):
        extract_zip_frames(str(damaged), 'crc.zip', str(tmp_path / 'f3'), Limits())


def test_video_pixels_are_checked_from_the_container_header(tmp_path, monkeypatch):
    synthetic_video(str(tmp_path / 'v.mp4'), num_frames=6, size=(64, 96))  # 96x64 = 6144 pixels a frame
    with pytest.raises(ValueError) as info:
        count_video_frames(str(tmp_path / 'v.mp4'), 'v.mp4', 600, Limits(max_frame_pixels=6000))
    assert str(info.value) == ("v.mp4: the video's frames are 96x64 pixels (0.01 megapixels), more than the limit "
                               'of 0.01 megapixels per frame (max_frame_pixels=6000): downscale the video.')
    with pytest.raises(ValueError, match=r'^v.mp4: 6 frames of 0.0 megapixels in all .*max_request_pixels=30000'):
        count_video_frames(str(tmp_path / 'v.mp4'), 'v.mp4', 600, Limits(max_request_pixels=30000))
    assert count_video_frames(str(tmp_path / 'v.mp4'), 'v.mp4', 600, Limits(max_request_pixels=6 * 6144)) == 6
    # nothing decoded before the header check refuses the video
    import cv2
    grabbed = []
    real = cv2.VideoCapture

    class Capture:
        def __init__(self, path):
            self.cap = real(path)

        def grab(self):
            grabbed.append(1)
            return self.cap.grab()

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(cv2, 'VideoCapture', Capture)
    with pytest.raises(ValueError, match='per frame'):
        count_video_frames(str(tmp_path / 'v.mp4'), 'v.mp4', 600, Limits(max_frame_pixels=6000))
    with pytest.raises(ValueError, match='per request'):
        count_video_frames(str(tmp_path / 'v.mp4'), 'v.mp4', 600, Limits(max_request_pixels=30000))
    assert grabbed == []


# ---------------------------------------------------------------------- result folders
def test_result_folders_expire_and_are_bounded(tmp_path):
    from soc_mm.models.inference import RVOSTestOptions
    now = [1000.0]
    model = types.SimpleNamespace(test_options=RVOSTestOptions())
    demo = WebDemo(model, str(tmp_path), num_examples=0, results_ttl_s=10, max_results=3, clock=lambda: now[0])

    def finished():
        import tempfile
        request_dir = tempfile.mkdtemp(prefix='req_', dir=demo.requests_root)
        demo._keep_results(request_dir)
        return request_dir

    first = [finished() for _ in range(3)]
    now[0] += 5
    assert demo.sweep() == [] and all(osp.isdir(d) for d in first)
    later = finished()  # a fourth: the oldest goes
    assert not osp.exists(first[0]) and demo.result_dirs() == first[1:] + [later]
    now[0] += 5  # the first three are 10 s old
    assert demo.sweep() == first[1:]
    assert sorted(os.listdir(demo.requests_root)) == [osp.basename(later)]
    demo.release(later)  # the page took its copies
    assert os.listdir(demo.requests_root) == [] and demo.result_dirs() == []


def test_background_sweeper_removes_expired_folders(tmp_path):
    from soc_mm.models.inference import RVOSTestOptions
    now = [0.0]
    model = types.SimpleNamespace(test_options=RVOSTestOptions())
    demo = WebDemo(model, str(tmp_path), num_examples=0, results_ttl_s=1, sweep_interval_s=0.05,
                   clock=lambda: now[0])
    try:
        request_dir = osp.join(demo.requests_root, 'req_x')
        os.makedirs(request_dir)
        demo._keep_results(request_dir)
        now[0] = 2.0
        for _ in range(100):  # bounded: 5 s at most
            if not osp.exists(request_dir):
                break
            threading.Event().wait(0.05)
        assert not osp.exists(request_dir)
    finally:
        demo.close()


# ---------------------------------------------------------------------- concurrent requests
@pytest.fixture(scope='module')
def tiny_demo(tmp_path_factory):
    from soc_mm.apis import init_model
    work_dir = str(tmp_path_factory.mktemp('tiny_demo'))
    config, checkpoint = tiny_model_files(work_dir)
    demo = WebDemo(init_model(config, checkpoint), work_dir, num_examples=0)
    yield demo
    demo.close()


def test_concurrent_requests_get_their_own_selection(tiny_demo, tmp_path):
    """Two requests with different selection settings and input sizes run their inferences at the same
    time (both are inside the head together) and each gets the masks it gets alone; the model's options
    and config are never changed."""
    from soc_mm.apis.web_demo import SELECTION_MULTI, SELECTION_TOP1
    demo, model = tiny_demo, tiny_demo.model
    frames = list(synthetic_video(str(tmp_path / 'v.mp4'), num_frames=4))
    jobs = [(SELECTION_TOP1, 0.5, 0), (SELECTION_MULTI, 0.01, 48)]  # random weights: every score is ~0.04
    alone = [demo.segment(frames, ['the red circle'], size, sel, thr) for sel, thr, size in jobs]
    assert alone[1][0][0].sum() > alone[0][0][0].sum()  # multi-object selects more than top-1
    options, cfg = model.test_options, model.cfg
    together = threading.Barrier(2, timeout=60)
    predict = model.bbox_head.predict
    seen = []

    def rendezvous(*args, **kwargs):
        seen.append((model.test_options is options, model.bbox_head.test_options is options, model.cfg is cfg))
        together.wait()  # both requests inside the model at once (a model-wide lock never gets here)
        return predict(*args, **kwargs)

    model.bbox_head.predict = rendezvous
    results, errors = [None, None], []

    def work(k):
        try:
            sel, thr, size = jobs[k]
            results[k] = demo.segment(frames, ['the red circle'], size, sel, thr)
        except BaseException as e:  # noqa: B902 (reported below)
            errors.append(e)
            together.abort()

    threads = [threading.Thread(target=work, args=(k, )) for k in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        del model.bbox_head.predict
    assert not errors, errors
    assert seen and all(all(s) for s in seen), seen  # the model's settings untouched during the inferences
    for k in range(2):
        assert np.array_equal(results[k][0][0], alone[k][0][0]) and np.allclose(results[k][1][0], alone[k][1][0])
    assert model.test_options is options and model.cfg is cfg
