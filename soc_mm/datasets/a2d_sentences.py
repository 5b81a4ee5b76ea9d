"""A2D-Sentences: a window of frames centred on each annotated frame, only that frame supervised."""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

import mmengine
import numpy as np
from mmengine.dataset import BaseDataset

from soc_mm.registry import DATASETS
from soc_mm.structures import coco_gt_dict, encode_mask
from .utils import (check_expression, check_not_empty, clean_expression, log_skips, parse_int, read_csv_dicts,
                    read_csv_rows, read_json, require_path)

A2D_LAYOUT = """<data_root>/
  Release/videoset.csv                 (no header: vid,label,start,end,height,width,total_frames,
                                        annotated_frames,subset; subset 0 = train, 1 = test)
  Release/CLIPS320/<video>.mp4
  text_annotations/a2d_annotation.txt  (csv with header: video_id,instance_id,query)
  text_annotations/a2d_missed_videos.txt
  text_annotations/a2d_annotation_with_instances/<video>/<frame:05d>.h5
      (instance [N], reMask [N, W, H] or [W, H], reBBox [4, N]; frames 1-based)"""

A2D_SUBSETS = {'train': 0, 'test': 1}


def a2d_image_id(video_id: str, frame_idx: int, instance_id) -> str:
    """The COCO image id of one (video, annotated frame, referred instance), as SOC names it."""
    return f'v_{video_id}_f_{frame_idx}_i_{instance_id}'


def read_a2d_text_annotations(data_root: str, split: str) -> List[tuple]:
    """(video_id, instance_id str, query) rows of ``split`` after SOC's filtering.

    Keeps the videos of the split that are not listed in ``a2d_missed_videos.txt`` and drops the
    dataset's one bad row (instance id ``'1 (copy)'``). The kept rows are checked: integer instance id,
    non-empty query (an error names the file, the video and the instance id); in the test split, at most
    one query per (video, instance) (the evaluated frames are named by video, instance and frame: a
    second query would get the same ids).
    """
    if split not in A2D_SUBSETS:
        raise ValueError(f"A2D-Sentences: split must be 'train' or 'test', got {split!r}")
    videoset_path = osp.join(data_root, 'Release', 'videoset.csv')
    rows = read_csv_rows(videoset_path, 'A2D-Sentences videoset', A2D_LAYOUT, header=False)
    check_not_empty(rows, videoset_path, '<rows>', 'one row per video')
    bad = [r for r in rows if len(r) < 9]
    if bad:
        raise ValueError(f'A2D-Sentences: Release/videoset.csv rows need 9 columns, got {bad[0]}')
    subsets = {r[0]: parse_int(r[8], videoset_path, f'subset (9th column) of video {r[0]!r}') for r in rows}
    missed_path = require_path(osp.join(data_root, 'text_annotations', 'a2d_missed_videos.txt'),
                               'A2D-Sentences missed videos list', A2D_LAYOUT, is_dir=False)
    with open(missed_path) as f:
        missed = set(f.read().split())
    videos = {v for v, subset in subsets.items() if v not in missed and subset == A2D_SUBSETS[split]}
    texts_path = osp.join(data_root, 'text_annotations', 'a2d_annotation.txt')
    texts = read_csv_dicts(texts_path, 'A2D-Sentences text annotations', A2D_LAYOUT,
                           ['video_id', 'instance_id', 'query'])
    check_not_empty(texts, texts_path, '<rows>', 'one row per referring expression (video_id,instance_id,query)')
    kept, rows_of = [], {}
    for line, t in enumerate(texts, start=2):  # line 1 is the header
        if t['video_id'] not in videos or t['instance_id'] == '1 (copy)':
            continue
        instance = parse_int(t['instance_id'], texts_path, f"instance_id of video {t['video_id']!r}")
        check_expression(t['query'], texts_path, t['video_id'], t['instance_id'])
        if split == 'test' and (t['video_id'], instance) in rows_of:
            raise ValueError(
                f"{texts_path}: lines {rows_of[(t['video_id'], instance)]} and {line} are two queries of video "
                f"{t['video_id']!r} instance {instance}; the test split names each evaluated frame by (video, "
                'instance, frame) (its COCO image id), so two queries of one instance cannot be told apart and '
                'only one would be scored: keep one query per (video, instance)')
        rows_of[(t['video_id'], instance)] = line
        kept.append((t['video_id'], str(instance), t['query']))
    return kept


def a2d_frame_index(path: str) -> int:
    """The 1-based frame number of an A2D annotation file ``<video>/<frame:05d>.h5``.

    Raises:
        ValueError: the file name is not a frame number (a stray file in the annotation folder), naming it.
    """
    stem = osp.splitext(osp.basename(path))[0]
    if not stem.isdigit():
        raise ValueError(f'A2D-Sentences: {path} is not a frame annotation: the .h5 files of '
                         'text_annotations/a2d_annotation_with_instances/<video>/ must be named by their 1-based '
                         f'frame number (<frame:05d>.h5, e.g. 00023.h5); move or rename {osp.basename(path)!r}')
    return int(stem)


def read_a2d_h5(path: str, with_masks: bool = False) -> Tuple[List[int], Optional[np.ndarray], Optional[np.ndarray]]:
    """Read one A2D-Sentences frame annotation ``<video>/<frame:05d>.h5``.

    Args:
        path (str): the h5 file (``instance`` [N]; ``reMask`` stored transposed, [N, W, H] or [W, H]
            for one instance; ``reBBox`` [4, N] x1, y1, x2, y2).
        with_masks (bool): also read the masks and boxes (else only the instance ids).

    Returns:
        (instance ids [N], masks bool [N, H, W] or None, boxes float [N, 4] x1y1x2y2 or None).
        A file that cannot be read, or whose masks/boxes do not match its ids, is a ValueError
        naming the video, the frame and the file.
    """
    import h5py
    video, frame = osp.basename(osp.dirname(path)), osp.splitext(osp.basename(path))[0]
    try:
        with h5py.File(path, 'r') as f:
            instances = [int(i) for i in np.asarray(f['instance']).reshape(-1)]
            if not with_masks:
                return instances, None, None
            masks = np.asarray(f['reMask'])
            boxes = np.asarray(f['reBBox'], dtype=np.float64).reshape(4, -1).T
    except Exception as e:  # noqa: BLE001
        raise ValueError(f'A2D-Sentences: corrupt annotation of video {video!r} frame {frame!r}: {path} ({e})') from e
    masks = (masks[None] if masks.ndim == 2 else masks).transpose(0, 2, 1) > 0
    if len(masks) != len(instances) or len(boxes) != len(instances):
        raise ValueError(f'A2D-Sentences: annotation of video {video!r} frame {frame!r}: {path} has '
                         f'{len(instances)} instance ids but {len(masks)} masks (reMask) and {len(boxes)} boxes '
                         '(reBBox)')
    return instances, masks, boxes


@DATASETS.register_module()
class A2DSentencesDataset(BaseDataset):
    """A2D-Sentences: one sample per (expression, annotated frame where its instance has a mask).

    The clip is ``num_frames`` frames centred on the annotated frame (``start = f - 1 - T//2``,
    indices outside the video padded with the edge frames, as SOC); ``valid_frame_idx = [T // 2]``.
    All instances of the annotated frame are ``gt_instances`` (labels 0), the referred one marked.

    Args:
        data_root (str): dataset root (layout: ``A2D_LAYOUT``).
        split (str): ``'train'`` or ``'test'``.
        num_frames (int): window length (SOC: 8).
        video_dir (str): folder of the mp4 files relative to ``data_root`` (SOC's code reads
            ``Release/clips320H``; its README says ``Release/CLIPS320``).
        cache_file (str, optional): json file caching the sample list (built once, read afterwards).
    """
    METAINFO = dict(classes=('object', ), dataset_name='a2d_sentences')
    LAYOUT = A2D_LAYOUT

    def __init__(self, data_root: str, split: str = 'train', num_frames: int = 8,
                 video_dir: str = 'Release/CLIPS320', cache_file: str = None, **kwargs):
        self.split, self.num_frames, self.video_dir, self.cache_file = split, num_frames, video_dir, cache_file
        kwargs.setdefault('test_mode', split != 'train')
        super().__init__(data_root=data_root, **kwargs)

    def _samples(self) -> List[tuple]:
        """(query, video_id, frame_idx, instance_id) tuples, as SOC's text annotations by frame."""
        if self.cache_file and osp.isfile(self.cache_file):
            return [tuple(s) for s in read_json(self.cache_file, 'A2D-Sentences cache_file')]
        ann_root = require_path(osp.join(self.data_root, 'text_annotations', 'a2d_annotation_with_instances'),
                                'A2D-Sentences instance masks', self.LAYOUT, is_dir=True)
        texts = read_a2d_text_annotations(self.data_root, self.split)
        instances_by_path: Dict[str, List[int]] = {}
        samples, no_frame = [], []
        for video_id, instance_id, query in texts:
            paths = sorted(glob.glob(osp.join(ann_root, video_id, '*.h5')))
            found = False
            for p in paths:
                frame_idx = a2d_frame_index(p)  # a stray file name is an error before reading the file
                if p not in instances_by_path:
                    instances_by_path[p] = read_a2d_h5(p)[0]
                if int(instance_id) in instances_by_path[p]:
                    found = True
                    samples.append((clean_expression(query), video_id, frame_idx, int(instance_id)))
            if not found:  # SOC also drops these (no ground-truth mask to supervise/evaluate)
                no_frame.append(f'{video_id}/instance {instance_id}')
        log_skips(type(self).__name__, 'expressions whose instance has no mask in any annotated frame',
                  no_frame, len(texts))
        if self.cache_file:
            with open(self.cache_file, 'w') as f:
                json.dump(samples, f)
        return samples

    def load_data_list(self) -> List[dict]:
        require_path(self.data_root, f'{type(self).__name__} data_root', self.LAYOUT, is_dir=True)
        video_root = require_path(osp.join(self.data_root, self.video_dir), 'A2D-Sentences videos', self.LAYOUT,
                                  is_dir=True)
        ann_root = osp.join(self.data_root, 'text_annotations', 'a2d_annotation_with_instances')
        t = self.num_frames
        data_list = []
        for query, video_id, frame_idx, instance_id in self._samples():
            video_path = osp.join(video_root, f'{video_id}.mp4')
            require_path(video_path, f'A2D-Sentences video {video_id!r}', self.LAYOUT, is_dir=False)
            start = frame_idx - 1 - t // 2
            data_list.append(dict(
                dataset=self.metainfo['dataset_name'], video_id=video_id, exp_id=f'{instance_id}_{frame_idx}',
                expression=query, video_path=video_path, frame_inds=list(range(start, start + t)),
                frame_ids=[f'{max(j, 0) + 1:05d}' for j in range(start, start + t)],
                ann_frame_index=frame_idx - 1, ann_path=osp.join(ann_root, video_id, f'{frame_idx:05d}.h5'),
                ref_instance_id=instance_id, valid_frame_idx=[t // 2],
                img_id=a2d_image_id(video_id, frame_idx, instance_id)))
        return data_list


def create_a2d_coco_gt(data_root: str, out_file: str, split: str = 'test') -> dict:
    """Write the COCO-format ground truth of A2D-Sentences ``split`` for the mAP metric (as SOC's tool).

    One image per (video, annotated frame, referred instance) with id ``a2d_image_id(...)``, one
    annotation with its RLE mask, area and bbox (x, y, w, h from the h5 ``reBBox``); layout and
    category of ``soc_mm.structures.coco_gt_dict``. Returns the written dict.
    """
    ann_root = require_path(osp.join(data_root, 'text_annotations', 'a2d_annotation_with_instances'),
                            'A2D-Sentences instance masks', A2D_LAYOUT, is_dir=True)
    frames = []
    for video_id, instance_id, _ in read_a2d_text_annotations(data_root, split):
        for p in sorted(glob.glob(osp.join(ann_root, video_id, '*.h5'))):
            frame_idx = a2d_frame_index(p)
            instances, masks, boxes = read_a2d_h5(p, with_masks=True)
            if int(instance_id) not in instances:
                continue  # no mask of this instance in this frame: not evaluated (as SOC)
            k = instances.index(int(instance_id))
            x1, y1, x2, y2 = boxes[k]
            frames.append((a2d_image_id(video_id, frame_idx, instance_id),
                           encode_mask(masks[k]), [x1, y1, x2 - x1, y2 - y1]))
    gt = coco_gt_dict(frames, source='A2D-Sentences text_annotations/a2d_annotation.txt')
    mmengine.dump(gt, out_file, file_format='json')
    return gt
