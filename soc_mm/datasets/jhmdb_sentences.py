"""JHMDB-Sentences (evaluation): 3 frames per video, each the centre of a window."""
import glob
import json
import os.path as osp
import random
from typing import List, Optional

from mmengine.dataset import BaseDataset

from soc_mm.registry import DATASETS
from .utils import check_expression, check_not_empty, read_csv_dicts, require_path

JHMDB_LAYOUT = """<data_root>/
  jhmdb_annotation.txt                          (csv with header: video_id,query)
  Rename_Images/<action>/<video>/<frame:05d>.png (frames 1-based)
  puppet_mask/<action>/<video>/puppet_mask.mat  (part_mask [H, W, T], one mask per frame)"""


def jhmdb_image_id(video_id: str, frame_idx: int) -> str:
    """The COCO image id of one evaluated frame, as SOC names it."""
    return f'v_{video_id}_f_{frame_idx}'


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
        import scipy.io
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
            with open(require_path(self.samples_file, 'JHMDB-Sentences samples_file', self.LAYOUT, False)) as f:
                samples = json.load(f)
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
                try:
                    num_masks = scipy.io.loadmat(mask_paths[video_id])['part_mask'].shape[2]
                except Exception as e:  # noqa: BLE001
                    raise ValueError(f'JHMDB-Sentences: corrupt puppet mask of video {video_id!r}: '
                                     f'{mask_paths[video_id]} ({e})') from e
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
    one image ``v_<video>_f_<frame>`` per sample with the puppet mask as RLE and the dummy category 1."""
    import numpy as np
    import scipy.io
    from pycocotools.mask import area, encode
    images, annotations, seen = [], [], set()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        mask = scipy.io.loadmat(info['mask_path'])['part_mask'][:, :, info['ann_frame_index']] > 0
        if info['img_id'] in seen:
            raise ValueError(f"JHMDB-Sentences: image id {info['img_id']} appears twice")
        seen.add(info['img_id'])
        images.append({'id': info['img_id'], 'height': int(mask.shape[0]), 'width': int(mask.shape[1])})
        rle = encode(np.asfortranarray(mask.astype(np.uint8)))
        rle['counts'] = rle['counts'].decode('ascii')
        annotations.append({'id': len(annotations) + 1, 'image_id': info['img_id'], 'category_id': 1,
                            'segmentation': rle, 'area': float(area(rle)), 'iscrowd': 0})
    gt = {'categories': [{'id': 1, 'name': 'dummy_class'}], 'images': images, 'annotations': annotations}
    with open(out_file, 'w') as f:
        json.dump(gt, f)
    return gt
