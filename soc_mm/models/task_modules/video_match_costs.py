"""Video-level (trajectory) match costs for SOC's Hungarian matching.

Every cost compares one video's queries with its target instances over all T frames and
returns [nq, N]. mmdet's match costs compare single images (and its mask costs on [N, T, H, W]
compute one clip-level dice), while SOC averages per-frame costs over time and counts the class
cost only on frames where the object is visible, hence these classes.

``pred_instances`` fields (per video): ``masks`` [nq, T, h, w] logits, ``scores`` [nq, T, K]
class logits, ``boxes`` [nq, T, 4] normalised cxcywh, optionally ``query_embeds`` [nq, C] and
``sentence_feat`` [nq, C] (the video's sentence feature repeated).
``gt_instances`` fields: ``masks`` [N, T, H, W] (padded canvas), ``boxes`` [N, T, 4] normalised
cxcywh, ``labels`` [N], ``visible`` bool [N, T].
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.structures import InstanceData
from torch import Tensor

from soc_mm.registry import TASK_UTILS
from soc_mm.structures import soc_generalized_box_iou


def _check_frames(pred: Tensor, gt: Tensor, name: str) -> None:
    if pred.shape[1] != gt.shape[1]:
        raise ValueError(f'{name}: predictions cover {pred.shape[1]} frames, targets {gt.shape[1]}')


@TASK_UTILS.register_module()
class VideoDiceCost(BaseMatchCost):
    """Negative dice coefficient per frame, averaged over time.

    Predicted logits are upsampled bilinearly to the target canvas first.

    Args:
        weight (float): cost weight.
        eps (float): smoothing added to numerator and denominator (official 1).
    """

    def __init__(self, weight: float = 1.0, eps: float = 1.0):
        super().__init__(weight=weight)
        self.eps = eps

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        pred, gt = pred_instances.masks, gt_instances.masks
        _check_frames(pred, gt, 'VideoDiceCost')
        if pred.shape[-2:] != gt.shape[-2:]:
            pred = F.interpolate(pred, size=gt.shape[-2:], mode='bilinear', align_corners=False)
        pred = pred.sigmoid().flatten(2)  # [nq, T, P]
        gt = gt.flatten(2).to(pred)  # [N, T, P]
        numerator = 2 * torch.einsum('qtp,ntp->tqn', pred, gt)
        denominator = pred.sum(-1).t()[:, :, None] + gt.sum(-1).t()[:, None, :]
        coef = (numerator + self.eps) / (denominator + self.eps)  # [T, nq, N]
        return -coef.mean(0) * self.weight


@TASK_UTILS.register_module()
class VideoFocalClassCost(BaseMatchCost):
    """Focal classification cost averaged over the frames where the target is visible.

    The class column is ``labels[j]`` (``0`` when K == 1, i.e. "is referred"). A target visible
    in no frame averages over all frames (this equals the official single-frame behaviour).

    Args:
        weight (float): cost weight.
        alpha (float), gamma (float), eps (float): focal cost parameters.
    """

    def __init__(self, weight: float = 1.0, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-8):
        super().__init__(weight=weight)
        self.alpha, self.gamma, self.eps = alpha, gamma, eps

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        prob = pred_instances.scores.sigmoid()  # [nq, T, K]
        visible = gt_instances.visible  # [N, T]
        _check_frames(prob, visible, 'VideoFocalClassCost')
        num_classes = prob.shape[-1]
        labels = gt_instances.labels.long()
        if num_classes == 1:
            labels = torch.zeros_like(labels)
        elif labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'VideoFocalClassCost: labels must be in [0, {num_classes}), got '
                             f'{labels.tolist()}')
        prob = prob[:, :, labels]  # [nq, T, N]
        neg = (1 - self.alpha) * prob.pow(self.gamma) * (-(1 - prob + self.eps).log())
        pos = self.alpha * (1 - prob).pow(self.gamma) * (-(prob + self.eps).log())
        cost = (pos - neg).permute(1, 0, 2)  # [T, nq, N]
        weight = visible.t().to(cost)[:, None, :]  # [T, 1, N]
        weight = torch.where(weight.sum(0, keepdim=True) > 0, weight, torch.ones_like(weight))
        return (cost * weight).sum(0) / weight.sum(0) * self.weight


@TASK_UTILS.register_module()
class VideoBoxL1Cost(BaseMatchCost):
    """L1 distance of normalised cxcywh boxes per frame, averaged over time (all frames)."""

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        pred, gt = pred_instances.boxes, gt_instances.boxes
        _check_frames(pred, gt, 'VideoBoxL1Cost')
        cost = torch.cdist(pred.transpose(0, 1), gt.transpose(0, 1).to(pred), p=1)  # [T, nq, N]
        return cost.mean(0) * self.weight


@TASK_UTILS.register_module()
class VideoGIoUCost(BaseMatchCost):
    """Negative GIoU (SOC's epsilon placement) per frame, averaged over time (all frames)."""

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        pred, gt = pred_instances.boxes, gt_instances.boxes
        _check_frames(pred, gt, 'VideoGIoUCost')
        pred = bbox_cxcywh_to_xyxy(pred.transpose(0, 1))  # [T, nq, 4]
        gt = bbox_cxcywh_to_xyxy(gt.transpose(0, 1).to(pred))  # [T, N, 4]
        cost = torch.stack([-soc_generalized_box_iou(p, g) for p, g in zip(pred, gt)])
        return cost.mean(0) * self.weight


@TASK_UTILS.register_module()
class QueryTextCost(BaseMatchCost):
    """Negative softmax (over queries) of query-sentence dot products; same for every target."""

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        sim = (pred_instances.query_embeds * pred_instances.sentence_feat).sum(-1)  # [nq]
        cost = -sim.softmax(dim=0)[:, None]
        return cost.expand(-1, len(gt_instances)) * self.weight
