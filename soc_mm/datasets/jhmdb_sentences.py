"""JHMDB-Sentences (evaluation): 3 frames per video, each the centre of a window."""
import glob
import os.path as osp
import random
from typing import List, Optional

import mmengine
import numpy as np
from mmengine.dataset import BaseDataset

from soc_mm.registry import DATASETS
from soc_mm.structures import coco_gt_dict, encode_mask
from .utils import check_expression, check_not_empty, load_json, read_csv_dicts, require_path

JHMDB_LAYOUT = """<data_root>/
  jhmdb_annotation.txt                          (csv with header: video_id,query)
  Rename_Images/<action>/<video>/<frame:05d>.png (frames 1-based)
  puppet_mask/<action>/<video>/puppet_mask.mat  (part_mask [H, W, T], one mask per frame)"""


def jhmdb_image_id(video_id: str, frame_idx: int) -> str:
    """The COCO image id of one evaluated frame, as SOC names it."""
    return f'v_{video_id}_f_{frame_idx}'


def read_puppet_masks(path: str, video_id: str) -> np.ndarray:
    """``part_mask`` [H, W, T] of a JHMDB ``puppet_mask.mat`` (one mask per frame); a file that cannot be
    read or holds no 3-d ``part_mask`` is a ValueError naming the video and the file."""
    import scipy.io
    try:
        masks = np.asarray(scipy.io.loadmat(path)['part_mask'])
    except Exception as e:  # noqa: BLE001
        raise ValueError(f'JHMDB-Sentences: corrupt puppet mask of video {video_id!r}: {path} ({e})') from e
    if masks.ndim != 3:
        raise ValueError(f'JHMDB-Sentences: puppet mask of video {video_id!r}: {path} part_mask has shape '
                         f'{masks.shape}, expected [H, W, T]')
    return masks


@DATASETS.register_module()
class JHMDBSentencesDataset(BaseDataset):
    """JHMDB-Sentences: per expression, 3 frames drawn among the frames that have a mask (as SOC).

    SOC draws them with an unseeded ``random.sample`` and saves the result; here the draw uses
    ``random.Random(seed)`` in annotation order, or ``samples_file`` replays a saved list (SOC's
    ``jhmdb_sentences_samples_metadata*.json``: only video ids, frame file names and counts are used,
    not its absolute paths). The clip is ``num_frames`` frames centred on the chosen frame, padded with
    edge frames; ``valid_frame_idx = [T // 2]``.

    Args:
        data_root (str): dataset root (layout: ``JHMDB_LAYOUT``).
        num_frames (int): window length (SOC: 8).
        frames_per_video (int): evaluated frames per expression (SOC: 3).
        seed (int): seed of the frame draw.
        samples_file (str, optional): SOC's saved samples metadata json to replay.
    """
    METAINFO = dict(classes=('object', ), dataset_name='jhmdb_sentences')
    LAYOUT = JHMDB_LAYOUT

    def __init__(self, data_root: str, num_frames: int = 8, frames_per_video: int = 3, seed: int = 0,
                 samples_file: Optional[str] = None, **kwargs):
        self.num_frames, self.frames_per_video, self.seed = num_frames, frames_per_video, seed
        self.samples_file = samples_file
        kwargs.setdefault('test_mode', True)
        super().__init__(data_root=data_root, **kwargs)

    def _folders(self, sub: str, pattern: str) -> dict:
        root = require_path(osp.join(self.data_root, sub), f'JHMDB-Sentences {sub}', self.LAYOUT, is_dir=True)
        return {osp.basename(osp.dirname(p) if p.endswith('.mat') else p): p
                for p in sorted(glob.glob(osp.join(root, *pattern.split('/'))))}

    def load_data_list(self) -> List[dict]:
        require_path(self.data_root, 'JHMDB-Sentences data_root', self.LAYOUT, is_dir=True)
        texts_path = osp.join(self.data_root, 'jhmdb_annotation.txt')
        texts = read_csv_dicts(texts_path, 'JHMDB-Sentences text annotations', self.LAYOUT, ['video_id', 'query'])
        check_not_empty(texts, texts_path, '<rows>', 'one row per referring expression (video_id,query)')
        # JHMDB has one expression per video: the expression id named in errors is its data row (1-based)
        queries = [check_expression(row['query'], texts_path, row['video_id'], f'row {i}')
                   for i, row in enumerate(texts, start=1)]
        frame_dirs = self._folders('Rename_Images', '*/*')
        mask_paths = self._folders('puppet_mask', '*/*/puppet_mask.mat')
        chosen = []  # (video_id, frame_idx, total_frames, query)
        if self.samples_file:
            samples = load_json(self.samples_file, 'JHMDB-Sentences samples_file', self.LAYOUT)
            if not isinstance(samples, list) or not samples:
                raise ValueError(f'{self.samples_file}: expected a non-empty json list of samples '
                                 '[video_id, frame_path, mask_path, total_frames, query], got '
                                 f'{type(samples).__name__}')
            for i, sample in enumerate(samples):
                if not isinstance(sample, list) or len(sample) != 5:
                    raise ValueError(f'{self.samples_file}: sample {i} must be a list [video_id, frame_path, '
                                     f'mask_path, total_frames, query], got {str(sample)[:80]}')
                video_id, frame_path, _, total, query = sample
                query = check_expression(query, self.samples_file, video_id, f'sample {i}')
                chosen.append((video_id, int(osp.splitext(osp.basename(frame_path))[0]), int(total), query))
        else:
            rng = random.Random(self.seed)
            for row, query in zip(texts, queries):
                video_id = row['video_id']
                for folder, what in ((frame_dirs, 'Rename_Images/<action>/<video>'),
                                     (mask_paths, 'puppet_mask/<action>/<video>/puppet_mask.mat')):
                    if video_id not in folder:
                        raise FileNotFoundError(f'JHMDB-Sentences: video {video_id!r} of jhmdb_annotation.txt has no '
                                                f'{what} under {self.data_root}\nExpected layout:\n{self.LAYOUT}')
                frames = sorted(glob.glob(osp.join(frame_dirs[video_id], '*.png')))
                num_masks = read_puppet_masks(mask_paths[video_id], video_id).shape[2]
                frames = frames[:num_masks]  # last frames may lack a mask: not evaluated (as SOC)
                if len(frames) < self.frames_per_video:
                    raise ValueError(f'JHMDB-Sentences: video {video_id!r} has {len(frames)} frames with masks, '
                                     f'fewer than frames_per_video={self.frames_per_video}')
                for p in sorted(rng.sample(frames, self.frames_per_video)):
                    chosen.append((video_id, int(osp.splitext(osp.basename(p))[0]), len(frames), query))
        t, data_list = self.num_frames, []
        for video_id, frame_idx, total, query in chosen:
            if video_id not in frame_dirs or video_id not in mask_paths:
                raise FileNotFoundError(f'JHMDB-Sentences: video {video_id!r} has no Rename_Images/<action>/<video> '
                                        f'or puppet_mask under {self.data_root}\nExpected layout:\n{self.LAYOUT}')
            start = frame_idx - t // 2
            data_list.append(dict(
                dataset=self.metainfo['dataset_name'], video_id=video_id, exp_id=f'{frame_idx}',
                expression=query, frame_dir=frame_dirs[video_id], img_suffix='.png',
                frame_ids=[f'{min(max(j, 1), total):05d}' for j in range(start, start + t)],
                mask_path=mask_paths[video_id], ann_frame_index=frame_idx - 1, valid_frame_idx=[t // 2],
                img_id=jhmdb_image_id(video_id, frame_idx)))
        return data_list


def create_jhmdb_coco_gt(dataset: JHMDBSentencesDataset, out_file: str) -> dict:
    """Write the COCO-format ground truth of the frames a ``JHMDBSentencesDataset`` evaluates (as SOC's tool):
    one image ``v_<video>_f_<frame>`` per sample with the puppet mask as RLE, no bbox (as SOC); layout and
    category of ``soc_mm.structures.coco_gt_dict``. Returns the written dict."""
    frames, masks_path, masks = [], None, None
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['mask_path'] != masks_path:  # a video's samples are consecutive: read its masks once
            masks_path, masks = info['mask_path'], read_puppet_masks(info['mask_path'], info['video_id'])
        t = info['ann_frame_index']
        if t >= masks.shape[2]:
            raise ValueError(f"JHMDB-Sentences: video {info['video_id']!r} frame {t + 1:05d} is evaluated but "
                             f'{masks_path} has masks for {masks.shape[2]} frames')
        frames.append((info['img_id'], encode_mask(masks[:, :, t] > 0), None))
    gt = coco_gt_dict(frames, source=f'JHMDB-Sentences samples of {dataset.data_root}')
    mmengine.dump(gt, out_file, file_format='json')
    return gt
