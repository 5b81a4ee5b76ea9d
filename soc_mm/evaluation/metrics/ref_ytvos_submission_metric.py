"""Ref-YouTube-VOS submission writer (format-only: the valid split is scored by the server)."""
import os
import os.path as osp
import shutil
import zipfile
from typing import Dict, List, Optional, Sequence

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


@METRICS.register_module()
class RefYTVOSSubmissionMetric(BaseMetric):
    """Write ``Annotations/<video_id>/<exp_id>/<frame>.png`` for every evaluated frame and zip
    them as the Ref-YouTube-VOS server expects (``<zip_name>`` holding ``Annotations/...``).

    PNGs are 8-bit grayscale, 255 on the referred object and 0 elsewhere, at the original
    frame size (``pred_masks`` bool ``[T_out, H0, W0]``). Every rank writes its own samples
    (``output_dir`` must be shared by the ranks); rank 0 zips exactly the files written in
    this evaluation (after mmengine's gather, so all ranks have written). Ids that are not
    plain names (``..``, separators) are refused. Returns no metrics.

    Args:
        output_dir (str): folder for ``Annotations/`` and the zip.
        zip_name (str): name of the zip in ``output_dir``. Defaults to ``'submission.zip'``.
        meta_file (str, optional): ``meta_expressions.json`` of the split; every video and
            expression in it must be predicted (else ValueError, nothing zipped).
        keep_pngs (bool): keep ``Annotations/`` after zipping. Defaults to False.
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
            paths = []
            for mask, frame in zip(masks, frames):
                Image.fromarray(mask.astype(np.uint8) * 255).save(osp.join(exp_dir, f'{frame}.png'))
                paths.append(f'{video_id}/{exp_id}/{frame}.png')
            self.results.append(dict(key=(video_id, exp_id), paths=paths))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
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
            shutil.rmtree(root, ignore_errors=True)
        print_log(f'{type(self).__name__}: wrote {len(files)} masks of {len(keys)} expressions '
                  f'({len({k[0] for k in keys})} videos) to {zip_path}', logger='current')
        return {}

