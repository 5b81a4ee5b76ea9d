"""The same object across clips (``test_cfg.link_clips``): the video-inference layer's choice of objects.

SOC chooses the referred object(s) of every clip on its own (``SOCHead.predict_by_feat`` with
``select_objects``): on a long video, processed as consecutive clips, the answer can jump to a
look-alike at a clip boundary, e.g. when the expression's distinguishing cue is visible only in some
clips. ``ClipLinker`` follows the objects chosen in one clip into the next one:

1. **match**: every followed object remembers its mask probabilities on the last frame where it was
   seen -- where its output mask is not empty (the mask probability above 0.5 somewhere; with
   ``presence_thr`` also its frame score above it): what was painted -- and its query embedding
   (``SOCHead.predict_candidates``: the output layer's hidden state averaged over the clip's frames).
   When the object was seen on the previous clip's last frame (objects move little from one frame to
   the next), its candidates in the next clip are the queries whose first-frame masks overlap that mask
   (soft IoU at least ``SAME_OBJECT_SHARE`` of the best overlap, which must reach ``MIN_LINK_IOU``):
   several queries often segment one object, and the one of them with the best clip score continues it.
   Otherwise (the object left the view, or no query overlaps it any more) its candidate is the query
   whose embedding is closest (cosine; look-alikes then tie and the clip scores decide);
2. **keep unless clearly stronger**: top-1 keeps the followed object's candidate unless the clip's best
   query scores more than ``link_margin`` above it (clip score: the time-averaged class probability,
   what ``select_objects`` ranks); threshold selection keeps every followed object whose candidate's
   clip score is above ``score_thr - link_margin`` (hysteresis) and adds the queries above
   ``score_thr`` as ``select_objects`` does; followed objects first, in their previous order, so that a
   slot of ``object_masks`` keeps its object while it stays selected.

The first clip of a stream (nothing followed yet) chooses exactly as SOC. The state is per sample
(expression) and per stream: ``VideoInference.iter_stream`` makes one linker per video.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .test_options import RVOSTestOptions

#: the first-frame masks whose soft IoU with the followed object's last mask is at least this share of the
#: best one show the same object (several queries often segment one object)
SAME_OBJECT_SHARE = 0.5
#: below this best soft IoU no query continues the followed object: matched by its embedding instead
MIN_LINK_IOU = 0.1


@dataclass
class FollowedObject:
    """What is remembered of one chosen object between clips.

    Attributes:
        query_feat (Tensor): [C] its query embedding in the last clip where it was seen (or chosen
            first).
        mask (Tensor, optional): [h, w] its mask probabilities (sigmoid of the mask logits at the mask
            features' resolution) on the last frame where it was seen; None: never seen.
        seen_at_end (bool): seen on the last frame of the previous clip.
    """
    query_feat: Tensor
    mask: Optional[Tensor]
    seen_at_end: bool


def soft_iou(mask: Tensor, candidates: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft IoU of probabilities ``mask`` [h, w] with ``candidates`` [n, h', w'] -> [n]
    (``candidates`` resized bilinearly to [h, w] when their size differs)."""
    if candidates.shape[-2:] != mask.shape:
        candidates = F.interpolate(candidates[None], size=mask.shape, mode='bilinear', align_corners=False)[0]
    inter = torch.minimum(mask[None], candidates).flatten(1).sum(1)
    union = torch.maximum(mask[None], candidates).flatten(1).sum(1)
    return inter / union.clamp(min=eps)


def link_affinity(followed: FollowedObject, first_masks: Tensor, query_feats: Tensor,
                  video_scores: Tensor) -> Tensor:
    """How well each candidate of the new clip continues ``followed``: the largest value is its candidate.

    Args:
        followed (FollowedObject): the object chosen so far.
        first_masks (Tensor): [nq, h, w] the candidates' mask probabilities on the clip's first frame.
        query_feats (Tensor): [nq, C] the candidates' query embeddings.
        video_scores (Tensor): [nq] the candidates' clip scores (time-averaged class probabilities).

    Returns:
        Tensor: [nq]. When the object was seen on the previous clip's last frame and some first-frame mask
        overlaps its mask (soft IoU >= ``MIN_LINK_IOU``): 1 + clip score for the queries of the same object
        (IoU >= ``SAME_OBJECT_SHARE`` x the best IoU), their IoU (< 1) for the others. Otherwise the
        embedding's cosine similarity mapped to [0, 1].
    """
    if followed.seen_at_end and followed.mask is not None:
        iou = soft_iou(followed.mask.float(), first_masks.float())
        best = float(iou.max())
        if best >= MIN_LINK_IOU:
            same = iou >= SAME_OBJECT_SHARE * best
            return torch.where(same, 1 + video_scores.float(), iou)
    cosine = F.cosine_similarity(followed.query_feat[None].float(), query_feats.float(), dim=-1)
    return (cosine + 1) / 2


class ClipLinker:
    """Chooses the objects of consecutive clips of one stream, following the previous choice.

    Args:
        options (RVOSTestOptions): ``object_selection``, ``score_thr``, ``allow_no_target``,
            ``link_margin`` and ``presence_thr`` (what counts as seen).
    """

    def __init__(self, options: RVOSTestOptions) -> None:
        self.options = options
        self.followed: Dict[int, List[FollowedObject]] = {}

    def select(self, sample: int, cls: Tensor, masks: Tensor, query_feats: Tensor,
               presence: Optional[Tensor] = None) -> Tensor:
        """The objects of sample ``sample`` (its index in the stream's samples) in a new clip.

        Args:
            sample (int): which sample (expression) of the stream.
            cls (Tensor): [T, nq, K] class logits of the clip.
            masks (Tensor): [T, nq, h, w] mask logits of the clip.
            query_feats (Tensor): [nq, C] query embeddings.
            presence (Tensor, optional): [T, nq] the presence probabilities ``presence_thr`` thresholds (a head
                with a presence branch); None: the frame scores.

        Returns:
            Tensor: int64 [k] chosen query indices (``SOCHead.predict_by_feat``'s ``selected``): one
            for 'top1'; for 'threshold', the followed objects kept (previous order), then the new ones
            best first.
        """
        from soc_mm.models.dense_heads.soc_head import query_scores, select_objects
        options = self.options
        video_scores, frame_scores = query_scores(cls.float())  # [nq], [T, nq]
        own = select_objects(video_scores, options.object_selection, options.score_thr, options.allow_no_target)
        followed = self.followed.get(sample, [])
        candidates: List[int] = []
        if not followed:
            chosen = own
        else:
            candidates = self._match(followed, masks[0].float().sigmoid(), query_feats, video_scores)
            if options.object_selection == 'top1':
                linked, best = candidates[0], int(own[0])
                strongest = best if float(video_scores[best] - video_scores[linked]) > options.link_margin else linked
                chosen = own.new_tensor([strongest])
            else:
                keep_thr = options.score_thr - options.link_margin
                kept = [q for q in candidates if float(video_scores[q]) > keep_thr]
                order = video_scores.argsort(descending=True, stable=True)
                new = [int(q) for q in order if float(video_scores[q]) > options.score_thr and int(q) not in kept]
                chosen = own.new_tensor(kept + new)
                if len(chosen) == 0 and not options.allow_no_target:
                    chosen = own
        self._remember(sample, chosen, dict(zip(candidates, followed)),
                       frame_scores if presence is None else presence.float(), masks, query_feats)
        return chosen

    @staticmethod
    def _match(followed: List[FollowedObject], first_masks: Tensor, query_feats: Tensor,
               video_scores: Tensor) -> List[int]:
        """One distinct candidate per followed object (greedy on ``link_affinity``, highest pair first), in
        the order of ``followed`` (m followed objects <= nq queries)."""
        affinity = torch.stack([link_affinity(f, first_masks, query_feats, video_scores) for f in followed])
        matched: Dict[int, int] = {}
        used = set()
        for flat in affinity.flatten().argsort(descending=True, stable=True).tolist():
            i, q = divmod(flat, affinity.shape[1])
            if i in matched or q in used:
                continue
            matched[i] = q
            used.add(q)
            if len(matched) == len(followed):
                break
        return [matched[i] for i in range(len(followed))]

    def _remember(self, sample: int, chosen: Tensor, previous: Dict[int, FollowedObject], presence: Tensor,
                  masks: Tensor, query_feats: Tensor) -> None:
        """The chosen objects become the followed ones: their embedding and their mask on the last frame
        where they are seen in this clip (their output mask is not empty there); an object unseen in the
        whole clip keeps what was remembered of the followed object its query continues (``previous``:
        candidate query -> followed object)."""
        painted = (masks.float() > 0).flatten(2).any(2)  # [T, nq]: mask probability above 0.5 somewhere
        if self.options.presence_thr is not None:
            painted &= presence > self.options.presence_thr
        memory = []
        for q in chosen.tolist():
            seen = painted[:, q].nonzero().flatten()
            if len(seen):
                last = int(seen[-1])
                memory.append(FollowedObject(query_feat=query_feats[q].detach().float().clone(),
                                             mask=masks[last, q].detach().float().sigmoid(),
                                             seen_at_end=last == presence.shape[0] - 1))
            elif q in previous:
                before = previous[q]
                memory.append(FollowedObject(query_feat=before.query_feat, mask=before.mask, seen_at_end=False))
            else:
                memory.append(FollowedObject(query_feat=query_feats[q].detach().float().clone(), mask=None,
                                             seen_at_end=False))
        self.followed[sample] = memory
