"""PresenceSOCHead: SOC's head plus a per-frame presence branch (not SOC's; for long videos)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.layers import MLP
from mmengine.model import ModuleList, bias_init_with_prob
from torch import Tensor, nn

from soc_mm.registry import MODELS
from soc_mm.structures import RVOSDataSample
from ..inference.test_options import RVOSTestOptions
from .soc_head import SOCHead


@MODELS.register_module()
class PresenceSOCHead(SOCHead):
    """SOC's head with a presence branch: is the video query's object on this frame?

    SOC's frame score (a query's class probability on a frame) reads frame query + video query; the video
    query, the same on every frame of the clip, dominates it, so it barely tells the frames where the
    referred object is absent from those where it is there (``docs/long_videos.md``). This head adds, per
    decoder layer, a presence logit [B, T, nq], the sum of

    * an MLP on the frame query alone ``f`` and the video query ``v`` added to it, ``[f, v, f * v]``
      [B, T, nq, 3C]: "the frame query is on the video query's object";
    * a heat map of the video query on each frame's mask features: ``max_p <K m_t(p), Q v> / sqrt(d)`` over
      the pixels ``p`` of the unpadded frame (``K``, ``Q``: linear maps to ``d = key_dims``): "the video
      query's object is somewhere in frame t", whatever the frame query follows.

    It is trained as the class branch is (sigmoid focal loss, averaged over the referred objects):
    positive for the query matched to a referred object on the frames where that object is visible, negative
    for every other query and frame. At inference its probability is the ``presence`` that
    ``test_cfg.presence_thr`` thresholds (``SOCHead.predict_by_feat``); the class, box and mask branches, the
    choice of the objects and the scores are SOC's.

    The frame queries are recovered from the head's inputs: ``hidden_states`` = frame queries + video
    queries (``SOC.forward_cluster``: per layer in training, the last layer's added to every layer in eval).

    Args:
        loss_presence (dict): the presence loss (default: mmdet ``FocalLoss``, as ``loss_cls``).
        key_dims (int): ``d``, the dimension of the heat map's keys and queries.
        Others: as ``SOCHead``.
    """

    #: the head inputs ``predict`` / ``predict_candidates`` take (``SOCHead.predict_inputs``)
    predict_inputs = SOCHead.predict_inputs + ('video_queries', )
    #: the per-frame output ``predict_by_feat`` takes (``frame_outputs``)
    frame_output_names = ('presence', )

    def __init__(self, *args, loss_presence: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25,
                                                         gamma=2.0, loss_weight=2.0),
                 key_dims: int = 32, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        layers = range(self.num_pred_layer)
        self.presence_branches = ModuleList([MLP(3 * self.embed_dims, self.embed_dims, 1, 2) for _ in layers])
        self.presence_keys = ModuleList([nn.Linear(self.mask_head.in_channels, key_dims) for _ in layers])
        self.presence_queries = ModuleList([nn.Linear(self.embed_dims, key_dims) for _ in layers])
        self.key_dims = key_dims
        self.loss_presence = MODELS.build(loss_presence)

    def init_weights(self) -> None:
        """SOC's init, and the presence bias at the class prior (0.01)."""
        super().init_weights()
        for branch in self.presence_branches:
            torch.nn.init.constant_(branch.layers[-1].bias, bias_init_with_prob(0.01))

    # ------------------------------------------------------------------ presence
    @staticmethod
    def _added_video_queries(video_queries: Tensor, layer: int) -> Tensor:
        """The video queries [B, nq, C] that ``SOC.forward_cluster`` added to layer ``layer``'s frame queries:
        that layer's when every layer was clustered (training), else the last clustered one (eval)."""
        return video_queries[layer] if layer < len(video_queries) and len(video_queries) > 1 else video_queries[-1]

    def forward_presence(self, hidden_state: Tensor, video_query: Tensor, mask_feats: Tensor, img_sizes: Tensor,
                         layer: int) -> Tensor:
        """hidden_state [B, T, nq, C] (frame + video queries), video_query [B, nq, C], mask_feats
        [B, T, D, h, w] (stride ``mask_head.feat_stride`` of the padded input), img_sizes [B, 2] unpadded (h, w)
        in pixels -> logits [B, T, nq]."""
        video = video_query[:, None].expand_as(hidden_state)
        frame = hidden_state - video
        query_term = self.presence_branches[layer](torch.cat([frame, video, frame * video], -1))[..., 0]
        keys = self.presence_keys[layer](mask_feats.permute(0, 1, 3, 4, 2))  # [B, T, h, w, d]
        queries = self.presence_queries[layer](video_query)  # [B, nq, d]
        heat = torch.einsum('bthwd,bqd->btqhw', keys, queries) / self.key_dims ** 0.5
        h, w = heat.shape[-2:]
        stride = self.mask_head.feat_stride
        valid_h = torch.div(img_sizes[:, 0] + stride - 1, stride, rounding_mode='floor')  # [B]
        valid_w = torch.div(img_sizes[:, 1] + stride - 1, stride, rounding_mode='floor')
        inside = ((torch.arange(h, device=heat.device)[None, :, None] < valid_h[:, None, None])
                  & (torch.arange(w, device=heat.device)[None, None, :] < valid_w[:, None, None]))  # [B, h, w]
        heat = heat.masked_fill(~inside[:, None, None], float('-inf'))
        return query_term + heat.flatten(-2).max(-1)[0]

    def presence_target(self, num_frames: int, num_queries: int, targets: List, ref_indices: List[List[int]],
                        indices: List[Tuple[Tensor, Tensor]], device) -> Tensor:
        """[B, T, nq] float: 1 for the query matched to a referred object on the frames where it is visible (the
        positives of SOC's class loss, ``SOCHead.matched_referred``)."""
        target = torch.zeros(len(targets), num_frames, num_queries, device=device)
        for b, ref, q in self.matched_referred(indices, ref_indices):
            target[b, targets[b].visible[ref], q] = 1
        return target

    # ------------------------------------------------------------------ losses
    def loss(self, hidden_states: Tensor, references: Sequence[Tensor], mask_feats: Tensor,
             video_queries: Tensor, fused_sentence_feat: Tensor,
             batch_data_samples: Sequence[RVOSDataSample]) -> Dict[str, Tensor]:
        """SOC's losses and ``loss_presence`` of every decoder layer (``d{l}.`` prefixes as SOC's), on one
        assignment per layer and one set of targets (SOC's, handed to ``loss_by_feat``)."""
        img_sizes = self._img_sizes(batch_data_samples, mask_feats.device)
        all_cls, all_boxes, all_masks = self(hidden_states, references, mask_feats, img_sizes)
        targets, ref_indices = self.get_targets(batch_data_samples, self._canvas_size(batch_data_samples),
                                                all_cls.device)
        num_layers = len(all_cls)
        assignments = self._match_layers(all_cls, all_boxes, all_masks, video_queries, fused_sentence_feat, targets,
                                         batch_data_samples)
        losses = self.loss_by_feat(all_cls, all_boxes, all_masks, video_queries, fused_sentence_feat,
                                   batch_data_samples, assignments=assignments, targets=(targets, ref_indices))
        num_masks = self._num_masks(targets)
        for l in range(num_layers):
            logits = self.forward_presence(hidden_states[l], self._added_video_queries(video_queries, l), mask_feats,
                                           img_sizes, l)
            B, T, nq = logits.shape
            target = self.presence_target(T, nq, targets, ref_indices, assignments[l], logits.device)
            prefix = '' if l == num_layers - 1 else f'd{l}.'
            losses[prefix + 'loss_presence'] = self.loss_presence(
                logits.reshape(-1, 1), target.reshape(-1, 1), avg_factor=num_masks)
        return losses

    # ------------------------------------------------------------------ inference
    def predict_candidates(self, hidden_states: Tensor, references: Sequence[Tensor], mask_feats: Tensor,
                           batch_data_samples: Sequence[RVOSDataSample], video_queries: Optional[Tensor] = None,
                           options: Optional[RVOSTestOptions] = None) -> Dict[str, Tensor]:
        """``SOCHead.predict_candidates`` plus ``presence`` [B, T, nq]: the presence probability of every
        query on every frame (``video_queries`` [L', B, nq, C], the detector's, is required)."""
        if video_queries is None:
            raise ValueError(f'{type(self).__name__}.predict_candidates needs the video_queries of the '
                             'detector\'s head inputs (SOC.forward_transformer)')
        candidates = super().predict_candidates(hidden_states, references, mask_feats, batch_data_samples,
                                                options=options)
        layer = self._options(options).layer_index(len(hidden_states))
        candidates.update(self.frame_outputs(layer, self._img_sizes(batch_data_samples, mask_feats.device),
                                             hidden_states=hidden_states, mask_feats=mask_feats,
                                             video_queries=video_queries))
        return candidates

    def frame_outputs(self, layer: int, img_sizes: Tensor, **head_inputs) -> Dict[str, Tensor]:
        """``presence`` [B, T, nq]: the presence probability of every query on every frame at decoder layer
        ``layer`` (``head_inputs``: ``hidden_states`` [L', B, T, nq, C], ``video_queries`` [L', B, nq, C],
        ``mask_feats`` [B, T, C_m, h, w])."""
        hidden_states, video_queries = head_inputs['hidden_states'], head_inputs['video_queries']
        logits = self.forward_presence(hidden_states[layer], self._added_video_queries(video_queries, layer),
                                       head_inputs['mask_feats'], img_sizes, layer)
        return dict(presence=logits.sigmoid())
