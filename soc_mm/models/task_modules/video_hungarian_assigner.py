"""Video-level Hungarian assigner (one assignment per video, shared by all frames)."""
from typing import List, Optional, Tuple, Union

import torch
from mmdet.models.task_modules.assigners import HungarianAssigner
from mmengine.structures import InstanceData
from torch import Tensor

from soc_mm.registry import TASK_UTILS


@TASK_UTILS.register_module()
class VideoHungarianAssigner(HungarianAssigner):
    """mmdet ``HungarianAssigner`` whose costs are built from the ``soc_mm`` registry.

    Sums the configured (video-level) match costs into [nq, N] and solves the assignment with
    scipy, exactly as mmdet's ``assign``. Works for any number of targets per video.

    Args:
        match_costs (list[dict] | dict): cost configs, e.g. ``VideoFocalClassCost``,
            ``VideoDiceCost``, ``VideoBoxL1Cost``, ``VideoGIoUCost``, ``QueryTextCost``.
    """

    def __init__(self, match_costs: Union[List[dict], dict]):
        if isinstance(match_costs, dict):
            match_costs = [match_costs]
        if not match_costs:
            raise ValueError('VideoHungarianAssigner: match_costs must not be empty')
        self.match_costs = [TASK_UTILS.build(cfg) for cfg in match_costs]

    def match(self, pred_instances: InstanceData, gt_instances: InstanceData,
              img_meta: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
        """Return (query indices, target indices), both long [min(nq, N)], sorted by query."""
        result = self.assign(pred_instances, gt_instances, img_meta=img_meta)
        query_idx = torch.nonzero(result.gt_inds > 0, as_tuple=False).flatten()
        return query_idx, result.gt_inds[query_idx] - 1
