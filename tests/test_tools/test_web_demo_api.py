"""tools/demo/web_demo.py end to end through its HTTP API (gradio_client; no browser): a good run and
every kind of bad input, against a server in a subprocess (tiny random-weight model, 127.0.0.1)."""
import io
import json
import os
import os.path as osp
import zipfile

import numpy as np
import pytest

from soc_mm.apis.web_demo import WebDemo
from web_demo_server import WebDemoServer, read_video, synthetic_video

pytest.importorskip('gradio_client')

MAX_FRAMES = 20
MAX_FRAME_PIXELS = 200 * 200
MAX_REQUEST_PIXELS = 400_000
TOP1 = 'top-1: one object per expression'
NO_EXAMPLE = '(none: use the uploaded video)'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    srv = WebDemoServer(str(tmp_path_factory.mktemp('web_demo_api')),
                        ['--max-frames', str(MAX_FRAMES), '--max-frame-pixels', str(MAX_FRAME_PIXELS),
                         '--max-request-pixels', str(MAX_REQUEST_PIXELS)])
    yield srv
    srv.stop()
    assert not osp.exists(osp.join(srv.temp_dir, 'requests')), 'request folders left after exit'
    assert not osp.exists(osp.join(srv.temp_dir, 'gradio')), "Gradio's cache left after exit"


@pytest.fixture(scope='module')
def client(server, tmp_path_factory):
    from gradio_client import Client
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp('downloads')))


def segment(client, path, expressions, clip_len=3, input_size=0):
    from gradio_client import handle_file
    return client.predict(handle_file(path) if path else None, NO_EXAMPLE, expressions, clip_len, input_size, TOP1,
                          0.5, api_name='/segment')


def app_error(client, path, expressions='the red circle'):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as info:
        segment(client, path, expressions)
    return str(info.value)


def test_good_run(client, tmp_path):
    from soc_mm.structures.mask import decode_mask
    frames = synthetic_video(str(tmp_path / 'shapes.mp4'), num_frames=7)
    status, video, _plot, key_frames, downloads = segment(client, str(tmp_path / 'shapes.mp4'),
                                                          'the red circle\n\nthe square on the left\n', clip_len=3)
    # blank lines are no expressions; 7 frames in clips of 3 -> 3 clips
    assert status.startswith('**shapes.mp4**: 7 frames (128x96) x 2 expression(s) in 3 clip(s) of up to 3 frames')
    assert '0: the red circle' in status and '1: the square on the left' in status and 'Warning' not in status
    names = sorted(osp.basename(p) for p in downloads)
    assert names == ['shapes_masks.zip', 'shapes_masks_rle.json', 'shapes_soc.mp4']
    files = {osp.basename(p): p for p in downloads}
    with open(files['shapes_masks_rle.json']) as f:
        rle = json.load(f)
    assert rle['video'] == 'shapes' and (rle['height'], rle['width']) == (96, 128)
    assert rle['frames'] == [f'{t:05d}' for t in range(7)]
    assert [e['expression'] for e in rle['expressions']] == ['the red circle', 'the square on the left']
    masks = [np.stack([decode_mask(r) for r in e['masks']]) for e in rle['expressions']]
    assert all(m.shape == (7, 96, 128) for m in masks)
    assert all(len(e['scores']) == 7 and all(0 <= s <= 1 for s in e['scores']) for e in rle['expressions'])
    with zipfile.ZipFile(files['shapes_masks.zip']) as archive:
        assert sorted(archive.namelist()) == sorted(f'Annotations/shapes/{k}/{t:05d}.png'
                                                    for k in range(2) for t in range(7))
        from PIL import Image
        for k in range(2):
            for t in range(7):
                png = np.asarray(Image.open(io.BytesIO(archive.read(f'Annotations/shapes/{k}/{t:05d}.png'))))
                assert set(np.unique(png)) <= {0, 255}
                assert np.array_equal(png == 255, masks[k][t])
    out = read_video(video)
    assert out.shape == frames.shape
    assert osp.getsize(files['shapes_soc.mp4']) == osp.getsize(video)
    assert key_frames and osp.isfile(key_frames)


def test_the_example_clip(client, tmp_path):
    example = next(iter(WebDemo.make_examples(str(tmp_path), 1)))  # the same clip as the server's
    assert example.startswith('synthetic clip 1: the ')
    status = client.predict(None, example, 'the red circle', 8, 0, TOP1, 0.5, api_name='/segment')[0]
    assert status.startswith('**synthetic_1.mp4**: 16 frames (96x96) x 1 expression(s) in 2 clip(s)')


def test_unreadable_and_truncated_videos(client, tmp_path):
    bad = tmp_path / 'noise.mp4'
    bad.write_bytes(os.urandom(4000))
    message = app_error(client, str(bad))
    assert 'noise.mp4: cannot open the video (unreadable, truncated or unsupported format).' in message
    good = tmp_path / 'cut.mp4'
    synthetic_video(str(good), num_frames=6)
    data = good.read_bytes()
    good.write_bytes(data[:len(data) // 2])
    message = app_error(client, str(good))
    assert message.startswith('cut.mp4: ') and ('cannot open the video' in message or 'zero decodable' in message)
    assert str(tmp_path) not in message  # the server's paths are not shown


def test_zero_frame_video(client, tmp_path):
    import av
    for name in ('empty.avi', 'empty.mp4'):  # a container header and no frame
        with av.open(str(tmp_path / name), mode='w') as container:
            stream = container.add_stream('mpeg4', rate=5)
            stream.width, stream.height, stream.pix_fmt = 32, 32, 'yuv420p'
            container.start_encoding()
    assert app_error(client, str(tmp_path / 'empty.avi')) == (
        'empty.avi: the video has zero decodable frames (empty, truncated or unreadable).')
    assert app_error(client, str(tmp_path / 'empty.mp4')) == (
        'empty.mp4: cannot open the video (unreadable, truncated or unsupported format).')


def test_zip_without_images_and_zip_of_frames(server, client, tmp_path):
    path = tmp_path / 'notes.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('readme.txt', 'no frames here')
        archive.writestr('frames/', '')
    requests_dir = osp.join(server.temp_dir, 'requests')
    before = set(os.listdir(requests_dir))
    assert app_error(client, str(path)) == ('notes.zip: the zip holds no frame images '
                                            '(expected .jpg/.jpeg/.png/.bmp/.webp files).')
    assert set(os.listdir(requests_dir)) <= before  # the failed request left no folder
    # a zip of frames whose member names try to leave the folder: the names never reach the file system
    from PIL import Image
    frames = synthetic_video(str(tmp_path / 'v.mp4'), num_frames=4)
    path = tmp_path / 'frames.zip'
    with zipfile.ZipFile(path, 'w') as archive:
        for t, frame in enumerate(frames):
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format='PNG')
            archive.writestr(f'../../evil/../f{t}.png', buffer.getvalue())
    status, _video, _plot, _key, downloads = segment(client, str(path), 'the red circle', clip_len=2)
    assert status.startswith('**frames.zip**: 4 frames (128x96) x 1 expression(s) in 2 clip(s)')
    with zipfile.ZipFile(next(p for p in downloads if p.endswith('_masks.zip'))) as archive:
        assert sorted(archive.namelist()) == [f'Annotations/frames/0/f{t}.png' for t in range(4)]
    assert not osp.exists(osp.join(osp.dirname(str(tmp_path)), 'evil'))


def test_empty_expression_list(client, tmp_path):
    synthetic_video(str(tmp_path / 'v.mp4'), num_frames=3)
    for text in ('', '  \n\n '):
        assert app_error(client, str(tmp_path / 'v.mp4'), text) == (
            'No referring expression: type one expression per line (e.g. "the red circle").')


def test_no_video(client):
    assert app_error(client, None) == ('No video: upload a video (mp4/webm/avi or a zip of frames) or pick an '
                                       'example clip.')


def test_unsupported_file_type(client, tmp_path):
    path = tmp_path / 'video.gif'
    path.write_bytes(b'GIF89a')
    # refused by the upload component (file_types) before our handler runs
    assert app_error(client, str(path)) == ('Invalid file type. Please upload a file that is one of these formats: '
                                            "['.mp4', '.webm', '.avi', '.mov', '.mkv', '.zip']")


def test_too_long_video(client, tmp_path):
    synthetic_video(str(tmp_path / 'long.mp4'), num_frames=MAX_FRAMES + 1, size=(32, 32))
    assert app_error(client, str(tmp_path / 'long.mp4')) == (
        f'long.mp4: the video has more than {MAX_FRAMES} frames, the limit of this server (trim it, or use a '
        'lower frame rate).')
    synthetic_video(str(tmp_path / 'ok.mp4'), num_frames=MAX_FRAMES, size=(32, 32))
    status = segment(client, str(tmp_path / 'ok.mp4'), 'the red circle', clip_len=10)[0]
    assert status.startswith(f'**ok.mp4**: {MAX_FRAMES} frames')


def test_too_long_expression_is_truncated_with_a_warning(client, tmp_path):
    synthetic_video(str(tmp_path / 'v.mp4'), num_frames=3)
    long_text = ' '.join(['the red circle on the left'] * 20)
    status = segment(client, str(tmp_path / 'v.mp4'), f'the square\n{long_text}')[0]
    # the fixture text encoder takes 62 tokens (max_position_embeddings 64 - pad id 1 - 1)
    assert '**Warning:** Expression 2 has ' in status
    assert 'more than the 62 the text encoder takes (<s> and </s> included): it was truncated to its first 60 ' \
           'tokens ("the red circle on the left the red circle on the left the re...")' in status
    assert 'Expression 1' not in status


def test_object_selection_and_input_size(client, tmp_path):
    """Multi-object selection gives the union of every query above the threshold (a superset of the
    top-1 mask); another input size still gives masks at the video's size. A request's settings are its
    own (passed to its inference, the model is not changed): the next request is back to top-1."""
    from gradio_client import handle_file
    from soc_mm.structures.mask import decode_mask
    synthetic_video(str(tmp_path / 'v.mp4'), num_frames=4)

    def masks(selection, score_thr=0.5, input_size=0):
        downloads = client.predict(handle_file(str(tmp_path / 'v.mp4')), NO_EXAMPLE, 'the red circle', 4, input_size,
                                   selection, score_thr, api_name='/segment')[4]
        with open(next(p for p in downloads if p.endswith('.json'))) as f:
            return np.stack([decode_mask(r) for r in json.load(f)['expressions'][0]['masks']])

    top1 = masks(TOP1)
    # random weights: every score is ~0.04
    multi = masks('multi-object: every object above the score threshold', score_thr=0.01)
    assert multi.shape == top1.shape == (4, 96, 128)
    assert (multi | top1).sum() == multi.sum() and multi.sum() > top1.sum()
    assert np.array_equal(masks(TOP1), top1)  # back to top-1
    small = masks(TOP1, input_size=48)
    assert small.shape == (4, 96, 128) and not np.array_equal(small, top1)


def test_pixel_bomb_zip_is_refused(server, client, tmp_path):
    """A zip of a few hundred bytes holding one 2048x2048 PNG: refused from the PNG's header, with the
    limit and what was received, no folder left."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.new('RGB', (2048, 2048)).save(buffer, format='PNG')
    path = tmp_path / 'bomb.zip'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('big.png', buffer.getvalue())
    assert osp.getsize(path) < 20000
    requests_dir = osp.join(server.temp_dir, 'requests')
    before = set(os.listdir(requests_dir))
    assert app_error(client, str(path)) == (
        "bomb.zip: frame 'big.png' is 2048x2048 pixels (4.19 megapixels), more than the limit of 0.04 megapixels "
        f'per frame (max_frame_pixels={MAX_FRAME_PIXELS}): downscale the video.')
    assert set(os.listdir(requests_dir)) <= before
    # frames within the per-frame limit whose total exceeds the request's: 16 x 160x160 = 409600 pixels
    synthetic_video(str(tmp_path / 'big.mp4'), num_frames=16, size=(160, 160))
    message = app_error(client, str(tmp_path / 'big.mp4'))
    assert message.startswith('big.mp4: 16 frames of 0.4 megapixels in all (frames x width x height), more than the '
                              f'limit of 0.4 megapixels per request (max_request_pixels={MAX_REQUEST_PIXELS})')


def test_one_shot_api_call_leaves_no_result_folder(server, client, tmp_path):
    """The request's folder is removed once Gradio has copied the results into its cache; the client
    still downloads them."""
    synthetic_video(str(tmp_path / 'v.mp4'), num_frames=3)
    requests_dir = osp.join(server.temp_dir, 'requests')
    for _ in range(2):
        status, video, _plot, key_frames, downloads = segment(client, str(tmp_path / 'v.mp4'), 'the red circle')
        assert status.startswith('**v.mp4**: 3 frames')
        assert all(osp.getsize(p) > 0 for p in downloads) and osp.getsize(video) > 0 and osp.isfile(key_frames)
        assert os.listdir(requests_dir) == []
