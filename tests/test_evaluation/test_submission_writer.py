"""Submission PNGs written in background threads (RefYTVOSSubmissionMetric / MeViSSubmissionMetric,
AsyncMaskWriter): the same zip as writing in the loop, errors naming the file, bounded pending writes,
every rank's files on disk before the results are gathered."""
import io
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import soc_mm  # noqa: F401
from soc_mm.evaluation.metrics import ref_ytvos_submission_metric as submission
from soc_mm.evaluation.metrics.ref_ytvos_submission_metric import AsyncMaskWriter, MaskWriteError
from soc_mm.registry import METRICS

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def random_samples(num_videos=3, exps=(2, 1, 3), frames=5, size=(36, 52), seed=0):
    """Samples as mmengine's Evaluator passes them: blobs and noise so that the PNGs differ."""
    rng = np.random.default_rng(seed)
    samples = []
    for v in range(num_videos):
        for e in range(exps[v % len(exps)]):
            masks = rng.random((frames, *size)) < rng.uniform(0.05, 0.6)
            masks[:, 5:20, 8:30] = True
            masks[rng.integers(frames)] = False  # an empty frame
            samples.append(dict(video_id=f'video_{v}', exp_id=str(e), frame_ids=[f'{5 * t:05d}' for t in range(frames)],
                                valid_frame_idx=None, ori_shape=size, pred_masks=torch.from_numpy(masks)))
    return samples


def zip_contents(path):
    """Member names in order and each member's bytes."""
    with zipfile.ZipFile(path) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def run_metric(metric_type, out_dir, samples, batch=2, **kwargs):
    metric = METRICS.build(dict(type=metric_type, output_dir=str(out_dir), **kwargs))
    for i in range(0, len(samples), batch):
        metric.process({}, samples[i:i + batch])
    assert metric.evaluate(len(samples)) == {}
    return out_dir / 'submission.zip'


@pytest.mark.parametrize('metric_type', ['RefYTVOSSubmissionMetric', 'MeViSSubmissionMetric'])
def test_threaded_writes_give_the_same_zip(metric_type, tmp_path):
    samples = random_samples()
    in_loop = zip_contents(run_metric(metric_type, tmp_path / 'sync', samples, write_threads=0))
    threaded = zip_contents(run_metric(metric_type, tmp_path / 'threads', samples, write_threads=3,
                                       max_pending_samples=2))
    assert threaded == in_loop  # same members, same order, same bytes
    pngs = {name: data for name, data in threaded if name.endswith('.png')}
    assert len(pngs) == sum(len(s['frame_ids']) for s in samples)
    # the PNG bytes are those of the former in-loop code: Image.fromarray(mask.astype(np.uint8) * 255)
    prefix = 'Annotations/' if metric_type == 'RefYTVOSSubmissionMetric' else ''
    for sample in samples[::2]:
        for t, frame in enumerate(sample['frame_ids']):
            expected = io.BytesIO()
            Image.fromarray(sample['pred_masks'][t].numpy().astype(np.uint8) * 255).save(expected, format='PNG')
            assert pngs[f"{prefix}{sample['video_id']}/{sample['exp_id']}/{frame}.png"] == expected.getvalue()
    assert not (tmp_path / 'threads' / 'Annotations').exists()


def test_a_failed_write_is_raised_naming_the_file_and_nothing_is_zipped(tmp_path):
    samples = random_samples()
    out = tmp_path / 'out'
    # a folder where the PNG of frame 00010 of video_1's expression 0 must go: that write fails
    (out / 'Annotations' / 'video_1' / '0' / '00010.png').mkdir(parents=True)
    metric = METRICS.build(dict(type='RefYTVOSSubmissionMetric', output_dir=str(out), write_threads=2))
    with pytest.raises(MaskWriteError) as error:  # by a later process() call or, at the latest, by evaluate()
        for sample in samples:
            metric.process({}, [sample])
        metric.evaluate(len(samples))
    message = str(error.value)
    assert 'video_1/0/00010.png' in message and "video_id='video_1', exp_id='0'" in message
    assert 'IsADirectoryError' in message and isinstance(error.value.__cause__, OSError)
    assert not (out / 'submission.zip').exists() and not (out / 'submission.zip.tmp').exists()


def test_a_failed_write_is_raised_by_the_next_submit(tmp_path):
    writer = AsyncMaskWriter(num_threads=1, max_pending=4)
    mask = np.zeros((4, 6), bool)
    bad = tmp_path / 'missing_folder' / 'a.png'
    writer.submit('a', [(str(bad), mask)], 'sample a')
    writer._pending[0][1].exception()  # wait until that write has failed
    with pytest.raises(MaskWriteError, match=r'sample a: could not write .*missing_folder/a\.png: FileNotFoundError'):
        writer.submit('b', [(str(tmp_path / 'b.png'), mask)], 'sample b')
    assert not writer._pending and writer._executor is None  # threads stopped, nothing left queued
    writer.flush()  # nothing left to raise
    with pytest.raises(MaskWriteError, match='sample c'):  # synchronous writing raises at once
        AsyncMaskWriter(num_threads=0, max_pending=1).submit('c', [(str(bad), mask)], 'sample c')


def test_pending_writes_are_bounded_and_same_key_writes_keep_their_order(tmp_path, monkeypatch):
    written = []
    write = submission.write_mask_pngs

    def slow_write(frames, where):
        time.sleep(0.02)
        written.append(where)
        write(frames, where)

    monkeypatch.setattr(submission, 'write_mask_pngs', slow_write)
    writer = AsyncMaskWriter(num_threads=3, max_pending=2)
    path = str(tmp_path / 'same.png')
    masks = [np.full((3, 5), i % 2 == 0) for i in range(6)]
    for i, mask in enumerate(masks):
        writer.submit('same key', [(path, mask)], f'write {i}')
        assert len(writer._pending) <= 2
    writer.flush()
    assert written == [f'write {i}' for i in range(6)]  # one folder: in submission order
    assert np.array_equal(np.array(Image.open(path)), masks[-1].astype(np.uint8) * 255)  # the last one wins
    with pytest.raises(ValueError, match='num_threads'):
        AsyncMaskWriter(num_threads=-1, max_pending=1)
    with pytest.raises(ValueError, match='max_pending'):
        AsyncMaskWriter(num_threads=1, max_pending=0)
    with pytest.raises(ValueError, match=r'MeViSSubmissionMetric: write_threads must be an int >= 0, got 1\.5'):
        METRICS.build(dict(type='MeViSSubmissionMetric', output_dir=str(tmp_path), write_threads=1.5))
    with pytest.raises(ValueError, match='RefYTVOSSubmissionMetric: max_pending_samples must be an int >= 1, got 0'):
        METRICS.build(dict(type='RefYTVOSSubmissionMetric', output_dir=str(tmp_path), max_pending_samples=0))


def test_every_png_is_on_disk_before_the_results_are_gathered(tmp_path, monkeypatch):
    """With several ranks, rank 0 zips the files of all ranks right after the gather: each rank must
    have finished its writes when it enters the gather."""
    import mmengine.evaluator.metric as mmengine_metric
    gather = mmengine_metric.collect_results
    seen = {}

    def checking_gather(results, size, device='cpu', tmpdir=None):
        paths = [p for r in results for p in r['paths']]
        seen['missing'] = [p for p in paths if not (tmp_path / 'out' / 'Annotations' / p).is_file()]
        seen['count'] = len(paths)
        return gather(results, size, device, tmpdir)

    monkeypatch.setattr(mmengine_metric, 'collect_results', checking_gather)
    write = submission.write_mask_pngs

    def slow_write(frames, where):  # the writes are certainly not done when the loop ends
        time.sleep(0.05)
        write(frames, where)

    monkeypatch.setattr(submission, 'write_mask_pngs', slow_write)
    samples = random_samples(frames=8, size=(120, 160))
    run_metric('RefYTVOSSubmissionMetric', tmp_path / 'out', samples, write_threads=2)
    assert seen == {'missing': [], 'count': 8 * len(samples)}
