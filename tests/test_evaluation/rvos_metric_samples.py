"""Samples of the metric tests (dicts as mmengine's Evaluator passes them to ``process``)."""
import numpy as np
import torch


def square(height, width, top, left, side, n=1):
    """``n`` frames [n, height, width] (bool) of one ``side`` x ``side`` square at (``top``, ``left``)."""
    mask = np.zeros((n, height, width), bool)
    mask[:, top:top + side, left:left + side] = True
    return mask


def make_sample(video_id, exp_id, pred, gt, **meta):
    """A sample of predicted masks ``pred`` and ground truth ``gt`` ([T, H, W] each), score 1 per frame;
    ``meta`` adds or replaces fields."""
    pred, gt = torch.as_tensor(pred), torch.as_tensor(gt)
    sample = dict(video_id=video_id, exp_id=exp_id, frame_ids=[f'{t:05d}' for t in range(len(pred))],
                  valid_frame_idx=None, ori_shape=tuple(pred.shape[-2:]), pred_masks=pred,
                  pred_scores=torch.ones(len(pred)), ori_gt_masks=gt)
    sample.update(meta)
    return sample


def a2d_samples(num=6, seed=1):
    """``num`` synthetic samples with query masks and scores (``dist_metric_runner.build_samples``)."""
    from dist_metric_runner import build_samples
    return build_samples(num, seed)
