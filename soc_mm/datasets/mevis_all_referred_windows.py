"""MeViS training windows as SOC++ samples them: only windows in which every referred object appears."""
from typing import Dict, List

import numpy as np

from soc_mm.registry import DATASETS
from soc_mm.structures.mask import check_rles
from .mevis import MeViSDataset
from .utils import log_skips


@DATASETS.register_module()
class MeViSAllReferredWindowsDataset(MeViSDataset):
    """``MeViSDataset`` whose training windows each show EVERY object the expression refers to (SOC++).

    Train: per expression, SOC's consecutive non-overlapping windows of ``num_frames`` frames (the last one
    completed: ``sliding_windows``; ``frame_sampling`` must be ``'consecutive'``), keeping a window only when
    each referred object (each ``anno_id``) has a non-empty mask on at least one of its frames. SOC++'s
    MeViS loader applies this rule (``MeViSDataset``'s consecutive sampling, SOC's, keeps a window where ANY
    referred object appears). Windows of an expression that refers to no object are kept (there is no
    object to miss). The skipped windows are logged. Samples and their pipeline are ``MeViSDataset``'s;
    SOC++ trains on one target per expression, the union of the referred objects
    (``MergeReferredObjects`` at the end of the pipeline).

    ``valid_u`` / ``valid``: whole videos, exactly as ``MeViSDataset``.

    Args:
        data_root (str): the ``mevis`` folder (layout: ``soc_mm.datasets.mevis.MEVIS_LAYOUT``).
        split (str): ``'train'``, ``'valid_u'`` or ``'valid'``.
        num_frames (int): window length T (SOC++: 8).
        frame_sampling (str): must be ``'consecutive'`` (windows fixed when the dataset is built; the rule
            needs them).
        **kwargs: the other arguments of ``MeViSDataset`` (``load_gt``, ``img_suffix``, ``pipeline``, ...);
            the train split needs its masks (``load_gt`` True, the default).
    """

    def __init__(self, data_root: str, split: str = 'train', num_frames: int = 8,
                 frame_sampling: str = 'consecutive', **kwargs):
        if frame_sampling != 'consecutive':
            raise ValueError(f"{type(self).__name__}: frame_sampling must be 'consecutive' (SOC++'s fixed windows, "
                             f"checked for the referred objects when the dataset is built), got {frame_sampling!r}; "
                             "use MeViSDataset for frame_sampling='global'")
        if split == 'train' and kwargs.get('load_gt') is False:
            raise ValueError(f'{type(self).__name__}: the train split needs its masks (load_gt=False given): a '
                             'window is kept only where every referred object appears')
        super().__init__(data_root=data_root, split=split, num_frames=num_frames, frame_sampling='consecutive',
                         **kwargs)

    def _appears(self, cache: Dict[str, np.ndarray], anno_id: int, video_id: str) -> np.ndarray:
        """bool [frames of the video]: where the object ``anno_id`` has a non-empty mask."""
        key = str(anno_id)
        if key not in cache:
            rles = self.anno_rles(anno_id)
            present = [t for t, rle in enumerate(rles) if rle is not None]
            appears = np.zeros(len(rles), dtype=bool)
            if present:
                from pycocotools import mask as mask_utils
                checked = check_rles([rles[t] for t in present],
                                     lambda i: f'{self.mask_file}: mask_dict[{key!r}] (video {video_id!r}) frame '
                                               f'{present[i]}')
                appears[present] = mask_utils.area(checked) > 0
            cache[key] = appears
        return cache[key]

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.split != 'train':
            return data_list
        appears: Dict[str, np.ndarray] = {}
        kept, skipped = [], []
        for info in data_list:
            inds = info['frame_inds']
            missing = [a for a in info['anno_ids'] if not self._appears(appears, a, info['video_id'])[inds].any()]
            if missing:
                skipped.append(f"{info['video_id']}/exp {info['exp_id']}/{info['frame_ids'][0]} (anno_id "
                               f'{missing} absent)')
                continue
            kept.append(info)
        log_skips(type(self).__name__, 'windows where some referred object never appears (as SOC++)', skipped,
                  len(data_list))
        return kept
