"""Ref-YouTube-VOS submission writer (format-only: the valid split is scored by the server)."""
import collections
import os
import os.path as osp
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from PIL import Image

from soc_mm.registry import METRICS
from .sample_utils import (check_expected_expressions, check_frame_size, evaluated_frame_ids,
                           get_field, get_masks, sample_as_dict, sample_name)

ANNOTATIONS_DIR = 'Annotations'


def _check_path_part(value: str, what: str, sample: dict) -> str:
    """``value`` must be a plain file/folder name (no separators, not '.'/'..')."""
    value = str(value)
    bad = (not value or value in ('.', '..') or '\x00' in value or '/' in value or '\\' in value
           or (os.sep in value) or (os.altsep is not None and os.altsep in value))
    if bad:
        raise ValueError(f'{sample_name(sample)}: {what} {value!r} is not a plain name; it would write '
                         'outside the submission directory')
    return value


class MaskWriteError(RuntimeError):
    """A submission PNG could not be written (the message names the file and the sample)."""


def write_mask_pngs(frames: Sequence[Tuple[str, np.ndarray]], where: str) -> None:
    """Write each bool mask ``[H0, W0]`` of ``frames`` (``(path, mask)`` pairs) as an 8-bit grayscale
    PNG (255 on the object, 0 elsewhere).

    Raises:
        MaskWriteError: naming the file and ``where`` (the sample), chained to the original error.
    """
    for path, mask in frames:
        try:
            # bool -> uint8 0/1 without a copy, then one multiplication: the same pixels (and PNG bytes)
            # as ``mask.astype(np.uint8) * 255``
            Image.fromarray(mask.view(np.uint8) * 255).save(path)
        except Exception as error:
            raise MaskWriteError(f'{where}: could not write {path}: {type(error).__name__}: {error}') from error


def remove_written_pngs(root: str, files: Sequence[str]) -> None:
    """Remove the PNGs ``root/<video>/<exp>/<frame>.png`` this evaluation wrote (``files``, relative to
    ``root``), then the folders they were in and ``root`` if that left them empty. Files that were
    already there (another run's, the user's) and their folders stay."""
    folders = set()
    for rel in files:
        try:
            os.remove(osp.join(root, rel))
        except FileNotFoundError:
            pass
        parts = rel.split('/')[:-1]
        folders.update('/'.join(parts[:k]) for k in range(1, len(parts) + 1))
    for folder in sorted(folders, key=lambda f: f.count('/'), reverse=True) + ['']:  # deepest first, root last
        try:
            os.rmdir(osp.join(root, folder) if folder else root)
        except OSError:  # not empty (files that were there before) or already gone
            pass


class AsyncMaskWriter:
    """Writes the PNGs of submitted samples in ``num_threads`` background threads, so that PNG encoding
    and file writing overlap the model's next forward.

    At most ``max_pending`` samples wait or are being written (``submit`` blocks until the oldest is
    done: bounded memory). An error of a finished write is raised by the next ``submit`` or by
    ``flush``, which waits for every write and raises the first error in submission order.
    Samples with the same ``key`` are written in submission order (the later one wins, as when
    writing synchronously). ``num_threads=0`` writes in the caller's thread.
    """

    def __init__(self, num_threads: int, max_pending: int) -> None:
        if not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f'num_threads must be an int >= 0, got {num_threads!r}')
        if not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f'max_pending must be an int >= 1, got {max_pending!r}')
        self.num_threads = num_threads
        self.max_pending = max_pending
        self._executor: Optional[ThreadPoolExecutor] = None
        self._pending: Deque[Tuple[object, Future]] = collections.deque()

    def submit(self, key: object, frames: Sequence[Tuple[str, np.ndarray]], where: str) -> None:
        """Write ``frames`` (``(path, bool mask [H0, W0])`` pairs) of the sample ``where`` (its name in
        error messages); ``key`` identifies the sample's folder."""
        if self.num_threads == 0:
            write_mask_pngs(frames, where)
            return
        while self._pending and self._pending[0][1].done():
            self._wait(self._pending.popleft()[1])  # a finished write's error is raised now
        for pending_key, future in list(self._pending):
            if pending_key == key:
                self._wait(future)
        while len(self._pending) >= self.max_pending:
            self._wait(self._pending.popleft()[1])
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.num_threads, thread_name_prefix='submission_png')
        self._pending.append((key, self._executor.submit(write_mask_pngs, list(frames), where)))

    def _wait(self, future: Future) -> None:
        """Wait for ``future``; on its error drop the writes not yet started and raise it."""
        try:
            future.result()
        except BaseException:
            self.close(cancel=True)
            raise

    def flush(self) -> None:
        """Wait until every submitted PNG is written; raise the first error (submission order)."""
        pending, self._pending = self._pending, collections.deque()
        try:
            errors = [future.exception() for _, future in pending]  # waits for each
        finally:
            self.close()
        for error in errors:
            if error is not None:
                raise error

    def close(self, cancel: bool = False) -> None:
        """Stop the threads (``cancel``: drop the writes not yet started)."""
        if cancel:
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


@METRICS.register_module()
class RefYTVOSSubmissionMetric(BaseMetric):
    """Write ``Annotations/<video_id>/<exp_id>/<frame>.png`` for every evaluated frame and zip
    them as the Ref-YouTube-VOS server expects (``<zip_name>`` holding ``Annotations/...``).

    PNGs are 8-bit grayscale, 255 on the referred object and 0 elsewhere, at the original
    frame size (``pred_masks`` bool ``[T_out, H0, W0]``). Every rank writes its own samples
    (``output_dir`` must be shared by the ranks); rank 0 zips exactly the files written in
    this evaluation (after mmengine's gather, so all ranks have written). Ids that are not
    plain names (``..``, separators) are refused. Returns no metrics.

    The PNGs are encoded and written in ``write_threads`` background threads while the model runs
    (:class:`AsyncMaskWriter`): same files, same bytes as writing them in :meth:`process`. Each rank
    waits for its own writes before the results are gathered (:meth:`evaluate`), so every file is
    on disk before rank 0 zips. A failed write is raised (:class:`MaskWriteError`, naming the file)
    by the next :meth:`process` call or at the latest before zipping; nothing is zipped then.

    Args:
        output_dir (str): folder for ``Annotations/`` and the zip.
        zip_name (str): name of the zip in ``output_dir``. Defaults to ``'submission.zip'``.
        meta_file (str, optional): ``meta_expressions.json`` of the split; every video and
            expression in it must be predicted (else ValueError, nothing zipped).
        keep_pngs (bool): keep the written PNGs after zipping. Defaults to False: the PNGs this
            evaluation wrote are removed, and the folders of ``Annotations/`` they leave empty; files
            that were there before stay.
        write_threads (int): threads that encode and write the PNGs; 0 writes them in
            :meth:`process`. Defaults to 1.
        max_pending_samples (int): at most this many samples wait for their PNGs to be written
            (their masks are held in memory meanwhile); :meth:`process` waits when they are
            reached. Defaults to 8.
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """
    default_prefix = 'ref_ytvos'
    #: folder of the zip that holds ``<video_id>/<exp_id>/<frame>.png`` ('' = the zip's top level).
    zip_root: str = ANNOTATIONS_DIR

    def __init__(self,
                 output_dir: str,
                 zip_name: str = 'submission.zip',
                 meta_file: Optional[str] = None,
                 keep_pngs: bool = False,
                 write_threads: int = 1,
                 max_pending_samples: int = 8,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if not zip_name.endswith('.zip') or osp.basename(zip_name) != zip_name:
            raise ValueError(f"zip_name must be a file name ending in '.zip', got {zip_name!r}")
        self.output_dir = osp.abspath(output_dir)
        self.zip_name = zip_name
        self.meta_file = meta_file
        self.keep_pngs = keep_pngs
        for name, value, minimum in (('write_threads', write_threads, 0),
                                     ('max_pending_samples', max_pending_samples, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f'{type(self).__name__}: {name} must be an int >= {minimum}, got {value!r}')
        self.writer = AsyncMaskWriter(write_threads, max_pending_samples)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Write the PNGs of each sample; one result (its relative PNG paths) per sample."""
        root = osp.join(self.output_dir, ANNOTATIONS_DIR)
        for sample in data_samples:
            sample = sample_as_dict(sample)
            masks = get_masks(sample, 'pred_masks')
            check_frame_size(sample, masks, 'pred_masks')
            video_id = _check_path_part(get_field(sample, 'video_id'), 'video_id', sample)
            exp_id = _check_path_part(get_field(sample, 'exp_id'), 'exp_id', sample)
            frames = [_check_path_part(f, 'frame id', sample)
                      for f in evaluated_frame_ids(sample, masks.shape[0])]
            exp_dir = osp.join(root, video_id, exp_id)
            if osp.commonpath([osp.realpath(exp_dir), osp.realpath(root)]) != osp.realpath(root):
                raise ValueError(f'{sample_name(sample)}: {exp_dir} resolves outside {root}')
            os.makedirs(exp_dir, exist_ok=True)
            self.writer.submit((video_id, exp_id),
                               [(osp.join(exp_dir, f'{frame}.png'), mask) for mask, frame in zip(masks, frames)],
                               f'{type(self).__name__}, {sample_name(sample)}')
            self.results.append(dict(key=(video_id, exp_id),
                                     paths=[f'{video_id}/{exp_id}/{frame}.png' for frame in frames]))

    def evaluate(self, size: int) -> dict:
        """Wait for this rank's PNG writes (raising a failed one), then gather and zip
        (``BaseMetric.evaluate``: the ranks gather the results, rank 0 calls :meth:`compute_metrics`)."""
        try:
            self.writer.flush()
        except BaseException:
            self.results.clear()
            raise
        return super().evaluate(size)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        self.writer.flush()  # no-op after evaluate(); for direct calls
        keys = {r['key'] for r in results}
        check_expected_expressions(sorted(keys), self.meta_file, type(self).__name__)
        files = sorted({p for r in results for p in r['paths']})
        zip_path = osp.join(self.output_dir, self.zip_name)
        root = osp.join(self.output_dir, ANNOTATIONS_DIR)
        # Same member layout as shutil.make_archive(..., root_dir=output_dir, base_dir='Annotations')
        # (zip_root 'Annotations'), or as `cd Annotations && zip -r ../x.zip *` (zip_root ''):
        # folder entries, then files, all under '<zip_root>/'.
        prefix = f'{self.zip_root}/' if self.zip_root else ''
        dirs = sorted({p.split('/')[0] for p in files} | {osp.dirname(p) for p in files})
        tmp_path = zip_path + '.tmp'
        with zipfile.ZipFile(tmp_path, 'w', compression=zipfile.ZIP_DEFLATED) as zf:
            if self.zip_root:
                zf.write(root, prefix)
            for d in dirs:
                zf.write(osp.join(root, d), f'{prefix}{d}/')
            for p in files:
                zf.write(osp.join(root, p), f'{prefix}{p}')
        os.replace(tmp_path, zip_path)
        if not self.keep_pngs:
            remove_written_pngs(root, files)
        print_log(f'{type(self).__name__}: wrote {len(files)} masks of {len(keys)} expressions '
                  f'({len({k[0] for k in keys})} videos) to {zip_path}', logger='current')
        return {}
