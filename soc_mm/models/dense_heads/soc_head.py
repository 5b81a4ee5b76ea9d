"""SOC prediction head: class / box / dynamic-mask branches, video-level losses, post-processing."""
import copy
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.layers import MLP, inverse_sigmoid
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule, ModuleList, bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor, nn

from soc_mm.registry import MODELS, TASK_UTILS
from soc_mm.structures import RVOSDataSample
from soc_mm.structures.rvos_data_sample import referred_instance_ids
from ..inference.test_options import RVOSTestOptions


def query_scores(cls: Tensor) -> Tuple[Tensor, Tensor]:
    """The scores SOC ranks and thresholds its queries by, from class logits ``cls`` [..., T, nq, K]:

    * video scores [..., nq]: each query's class probability averaged over the T frames, best class
      (``prob.mean(T).max(K)``; what ``select_objects`` ranks);
    * frame scores [..., T, nq]: each query's best-class probability on each frame (``prob.max(K)``; what
      ``test_cfg.presence_thr`` thresholds).
    """
    prob = cls.sigmoid()
    return prob.mean(-3).max(-1)[0], prob.max(-1)[0]


def select_objects(video_scores: Tensor, object_selection: str = 'top1', score_thr: Optional[float] = None,
                   allow_no_target: bool = False) -> Tensor:
    """The video queries an expression refers to.

    Args:
        video_scores (Tensor): [nq] score of each video query (time-averaged class probability).
        object_selection (str): 'top1': the best query; 'threshold': every query whose score is
            above ``score_thr`` (strictly), the best one when none is.
        score_thr (float): threshold of 'threshold'.
        allow_no_target (bool): 'threshold' selects nothing (instead of the best query) when no
            score is above ``score_thr``.

    Returns:
        Tensor: int64 [k] selected query indices, best first (k = 1 for 'top1'; 0 <= k <= nq).
    """
    best = video_scores.argmax(-1, keepdim=True)
    if object_selection == 'top1':
        return best
    order = video_scores.argsort(descending=True, stable=True)
    selected = order[video_scores[order] > score_thr]
    if len(selected) == 0 and not allow_no_target:
        return best
    return selected


@MODELS.register_module()
class SOCHead(BaseModule):
    """SOC's per-decoder-layer heads and criterion.

    Per decoder layer ``l`` (``hs = frame queries + VOC video queries``, [B, T, nq, C]):
    ``cls = cls_branches[l](hs)`` [.., K]; ``boxes = sigmoid(reg_branches[l](hs) + inverse_sigmoid(ref))``
    (``ref`` 2-d: only cx, cy are shifted); ``masks = mask_head(mask_feats, controller(hs), mask_ref)``.

    Interface used by the detector (the keys of ``SOC.forward_transformer``'s ``head_inputs_dict``):

    * ``forward(hidden_states, references, mask_feats, img_sizes)``
      - hidden_states: [L, B, T, nq, C] (or list of L [B, T, nq, C]);
      - references: list of L+1 [B, T, nq, 2|4]: the initial reference, then the reference refined
        by each layer. Layer l's boxes add to ``references[l]``, its masks are centred on
        ``references[l + 1][..., :2]`` (the cx, cy it refined itself);
      - mask_feats: [B, T, D, h, w]; img_sizes: [B, 2] unpadded (h, w).
      Returns ``(all_cls [L, B, T, nq, K], all_boxes [L, B, T, nq, 4], all_masks [L, B, T, nq, h', w'])``.
    * ``loss(..., video_queries [L, B, nq, C], fused_sentence_feat [B, C], batch_data_samples)`` ->
      weighted loss dict: ``loss_cls, loss_bbox, loss_iou, loss_mask`` (mask focal), ``loss_dice,
      loss_con`` for the last layer and ``d{l}.<name>`` for earlier layers (official names:
      ``soc_mm.official.loss_names``).
    * ``match(...)`` -> per layer, per video ``(query_idx, gt_idx)`` (the assignment the losses use).
    * ``predict(hidden_states, references, mask_feats, batch_data_samples)`` /
      ``predict_by_feat(cls [B, T, nq, K], masks [B, T, nq, h, w], batch_img_metas)`` -> one
      ``InstanceData`` per sample whose items are its T frames (``masks``, ``scores``, ...; see
      ``predict_by_feat``); the detector adds them to the data samples.

    Targets: ``gt_instances`` (masks bool [N, T, h, w] at img_shape, boxes [N, T, 4] normalised
    cxcywh, labels [N], visible bool [N, T] (default: mask non-empty)) and metainfo ``ref_inst_idx``
    (an int: the one referred instance; or a list: every referred instance, several or none for an
    expression that refers to nothing, e.g. MeViS). Every referred object's matched query is a
    positive of the class loss (on the frames where the object is visible) and of the contrastive
    loss (multi-positive: see ``QuerySentenceContrastiveLoss``); an expression that refers to nothing
    has no positive, so the class loss pushes all its queries to "no object".
    Target masks are zero-padded bottom/right to the padded input size (metainfo
    ``batch_input_shape``/``pad_shape``; else the largest ``img_shape`` of the batch, which is what
    the official code pads to) and predictions are bilinearly upsampled to it.

    Args:
        num_classes (int): K (1: "is referred" logit; 65: Ref-YouTube-VOS categories).
        embed_dims (int): C.
        num_pred_layer (int): L, number of decoder layers with their own cls/reg branches.
        mask_head (dict): ``DynamicMaskHead`` config.
        loss_* (dict): loss configs (mmdet FocalLoss/DiceLoss/L1Loss, SOCGIoULoss,
            QuerySentenceContrastiveLoss). Defaults = official coefficients.
        train_cfg (dict): ``assigner`` (``VideoHungarianAssigner`` config) and
            ``referred_only`` (bool, default False): keep only the referred instance(s) of each
            sample as targets (official Ref-YouTube-VOS mode; A2D uses all instances).
        test_cfg (dict | RVOSTestOptions): the test options (``RVOSTestOptions``; a dict is parsed
            with ``RVOSTestOptions.from_cfg``). The head reads ``output_layer`` (default 'first':
            official eval reports the first decoder layer's heads), ``return_all_queries``
            (default False: also return every query's masks/scores, as the official A2D
            post-process), ``object_selection`` ('top1' (default) | 'threshold'), ``score_thr``
            (required by 'threshold') and ``allow_no_target`` (default False): see
            ``predict_by_feat`` and ``select_objects``. Inside ``SOC`` the detector parses its
            ``test_cfg`` and hands the head the same object (``test_options``).
    """

    def __init__(self,
                 num_classes: int = 1,
                 embed_dims: int = 256,
                 num_pred_layer: int = 4,
                 mask_head: dict = dict(type='DynamicMaskHead', in_channels=8, channels=8, num_layers=3,
                                        rel_coord=True, feat_stride=4, out_stride=4),
                 loss_cls: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0,
                                       loss_weight=2.0),
                 loss_mask: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True, alpha=0.25, gamma=2.0,
                                        loss_weight=2.0),
                 loss_dice: dict = dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                                        naive_dice=True, eps=1.0, loss_weight=5.0),
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=2.0),
                 loss_iou: dict = dict(type='SOCGIoULoss', loss_weight=2.0),
                 loss_con: dict = dict(type='QuerySentenceContrastiveLoss', loss_weight=1.0),
                 train_cfg: Optional[dict] = None,
                 test_cfg: Union[None, dict, RVOSTestOptions] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'SOCHead: num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.num_pred_layer = num_pred_layer
        self.train_cfg = dict(train_cfg or {})
        self.test_options = RVOSTestOptions.from_cfg(test_cfg, num_layers=num_pred_layer)
        assigner = self.train_cfg.get('assigner', dict(
            type='VideoHungarianAssigner',
            match_costs=[
                dict(type='VideoFocalClassCost', weight=2.0),
                dict(type='VideoDiceCost', weight=5.0),
                dict(type='VideoBoxL1Cost', weight=2.0),
                dict(type='VideoGIoUCost', weight=2.0),
            ]))
        self.assigner = TASK_UTILS.build(assigner)
        self.referred_only = bool(self.train_cfg.get('referred_only', False))

        self.mask_head = MODELS.build(mask_head)
        cls_branch = nn.Linear(embed_dims, num_classes)
        reg_branch = MLP(embed_dims, embed_dims, 4, 3)
        # the official heads are identical clones of one initialised module
        self.cls_branches = ModuleList([copy.deepcopy(cls_branch) for _ in range(num_pred_layer)])
        self.reg_branches = ModuleList([copy.deepcopy(reg_branch) for _ in range(num_pred_layer)])
        self.controller = MLP(embed_dims, embed_dims, self.mask_head.num_gen_params, 3)

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.loss_con = MODELS.build(loss_con)

    def init_weights(self) -> None:
        """Official init: class bias prior 0.01, zero last box layer (layer 0 wh bias -2),
        xavier-uniform controller with zero biases."""
        super().init_weights()
        bias = bias_init_with_prob(0.01)
        for branch in self.cls_branches:
            nn.init.constant_(branch.bias, bias)
        for branch in self.reg_branches:
            nn.init.constant_(branch.layers[-1].weight, 0)
            nn.init.constant_(branch.layers[-1].bias, 0)
        nn.init.constant_(self.reg_branches[0].layers[-1].bias.data[2:], -2.0)
        for layer in self.controller.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ forward
    def forward_single(self, hidden_state: Tensor, reference: Tensor, mask_reference: Tensor,
                       mask_feats: Tensor, img_sizes: Tensor, layer_id: int) -> Tuple[Tensor, Tensor, Tensor]:
        """One decoder layer: hidden_state [B, T, nq, C], reference [B, T, nq, 2|4], mask_reference
        [B, T, nq, 2] -> cls [B, T, nq, K], boxes [B, T, nq, 4], masks [B, T, nq, h, w]."""
        cls = self.cls_branches[layer_id](hidden_state)
        delta = self.reg_branches[layer_id](hidden_state)
        ref = inverse_sigmoid(reference)
        if ref.shape[-1] == 4:
            delta = delta + ref
        elif ref.shape[-1] == 2:
            delta = torch.cat([delta[..., :2] + ref, delta[..., 2:]], dim=-1)
        else:
            raise ValueError(f'SOCHead: references must end in 2 or 4, got {tuple(reference.shape)}')
        params = self.controller(hidden_state)
        masks = self.mask_head(mask_feats, params, mask_reference[..., :2], img_sizes)
        return cls, delta.sigmoid(), masks

    def forward(self, hidden_states: Union[Tensor, Sequence[Tensor]], references: Sequence[Tensor],
                mask_feats: Tensor, img_sizes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """All decoder layers (layer index = branch index); see the class docstring for shapes."""
        num_layers = len(hidden_states)
        if not (len(references) == num_layers + 1 and num_layers <= self.num_pred_layer):
            raise ValueError(f'SOCHead: got {num_layers} hidden states and {len(references)} references '
                             f'(need {num_layers} + 1) for {self.num_pred_layer} decoder layers')
        outs = [self.forward_single(hidden_states[l], references[l], references[l + 1][..., :2], mask_feats,
                                    img_sizes, l) for l in range(num_layers)]
        return tuple(torch.stack(x) for x in zip(*outs))

    # ------------------------------------------------------------------ targets
    @staticmethod
    def _canvas_size(batch_img_metas: Sequence[Union[RVOSDataSample, dict]]) -> Tuple[int, int]:
        """Padded (H, W) of a batch: ``batch_input_shape`` / ``pad_shape``, else the largest ``img_shape``."""
        metas = [m.metainfo if isinstance(m, RVOSDataSample) else m for m in batch_img_metas]
        for key in ('batch_input_shape', 'pad_shape'):
            if key in metas[0]:
                return tuple(int(s) for s in metas[0][key][:2])
        return (max(int(m['img_shape'][0]) for m in metas), max(int(m['img_shape'][1]) for m in metas))

    @staticmethod
    def referred_indices(metainfo: dict, sample_index: int, num_instances: int) -> List[int]:
        """The referred instances of a sample, as indices into its ``gt_instances``: metainfo
        ``ref_inst_idx``, an int (one object) or a list (MeViS: several, or none for an expression
        that refers to nothing), read by ``referred_instance_ids`` (the data-sample contract,
        ``soc_mm.structures.rvos_data_sample``); checked in range and without repeats."""
        try:
            indices = referred_instance_ids(metainfo)
        except KeyError as e:
            raise ValueError(f'SOCHead: data sample {sample_index}: {e.args[0]}') from None
        for ref in indices:
            if not 0 <= ref < num_instances:
                raise ValueError(f'SOCHead: ref_inst_idx {ref} of sample {sample_index} out of range for '
                                 f'{num_instances} instances')
        if len(set(indices)) != len(indices):
            raise ValueError(f'SOCHead: ref_inst_idx of sample {sample_index} repeats an instance: {indices}')
        return indices

    def get_targets(self, batch_data_samples: Sequence[RVOSDataSample], canvas: Tuple[int, int],
                    device=None) -> Tuple[List[InstanceData], List[List[int]]]:
        """Per video: InstanceData(masks float [N, T, H, W] padded, boxes, labels, visible) on
        ``device`` and the referred indices into these targets (a list: one index for a
        single-object expression, several or none for MeViS).

        With ``train_cfg.referred_only`` the targets are the referred instances only (possibly none),
        in ``ref_inst_idx`` order; otherwise every instance of ``gt_instances``."""
        targets, ref_indices = [], []
        for i, sample in enumerate(batch_data_samples):
            if 'gt_instances' not in sample:
                raise ValueError(f'SOCHead: data sample {i} has no gt_instances')
            gt = sample.gt_instances
            masks = gt.masks
            if masks.dim() != 4:
                raise ValueError(f'SOCHead: gt_instances.masks of sample {i} must be [N, T, h, w], '
                                 f'got {tuple(masks.shape)}')
            refs = self.referred_indices(sample.metainfo, i, len(masks))
            visible = gt.visible if 'visible' in gt else masks.flatten(2).any(-1)
            if self.referred_only:
                keep = torch.tensor(refs, dtype=torch.long, device=masks.device)
            else:
                keep = torch.arange(len(masks), device=masks.device)
            h, w = masks.shape[-2:]
            if h > canvas[0] or w > canvas[1]:
                raise ValueError(f'SOCHead: gt masks of sample {i} ({h}x{w}) exceed the padded size {canvas}')
            padded = F.pad(masks[keep].float(), (0, canvas[1] - w, 0, canvas[0] - h))
            targets.append(InstanceData(masks=padded, boxes=gt.boxes[keep].float(),
                                        labels=gt.labels[keep].long(),
                                        visible=visible[keep].bool()).to(device or masks.device))
            ref_indices.append(list(range(len(refs))) if self.referred_only else refs)
        return targets, ref_indices

    def _num_masks(self, targets: List[InstanceData]) -> float:
        """T * sum of instances (absent frames count), averaged over ranks, clamped >= 1."""
        num = sum(t.masks.shape[0] * t.masks.shape[1] for t in targets)
        num = torch.as_tensor(float(num), device=targets[0].masks.device)
        return reduce_mean(num).clamp(min=1).item()

    # ------------------------------------------------------------------ matching
    @torch.no_grad()
    def _match_layer(self, cls: Tensor, boxes: Tensor, masks: Tensor, video_queries: Optional[Tensor],
                     fused_sentence_feat: Optional[Tensor], targets: List[InstanceData],
                     batch_data_samples) -> List[Tuple[Tensor, Tensor]]:
        result = []
        for b, target in enumerate(targets):
            pred = InstanceData(scores=cls[b].transpose(0, 1), boxes=boxes[b].transpose(0, 1),
                                masks=masks[b].transpose(0, 1))
            if video_queries is not None and fused_sentence_feat is not None:
                pred.query_embeds = video_queries[b]
                pred.sentence_feat = fused_sentence_feat[b][None].expand_as(video_queries[b])
            result.append(self.assigner.match(pred, target, batch_data_samples[b].metainfo))
        return result

    def match(self, all_cls: Tensor, all_boxes: Tensor, all_masks: Tensor, video_queries: Optional[Tensor],
              fused_sentence_feat: Optional[Tensor], batch_data_samples: Sequence[RVOSDataSample]
              ) -> List[List[Tuple[Tensor, Tensor]]]:
        """Assignment per decoder layer and video: list[L] of list[B] of (query_idx, gt_idx) long tensors.

        ``gt_idx`` indexes ``gt_instances`` (or the referred-only target list when
        ``train_cfg.referred_only``)."""
        targets, _ = self.get_targets(batch_data_samples, self._canvas_size(batch_data_samples),
                                      all_cls.device)
        return self._match_layers(all_cls, all_boxes, all_masks, video_queries, fused_sentence_feat, targets,
                                  batch_data_samples)

    def _match_layers(self, all_cls: Tensor, all_boxes: Tensor, all_masks: Tensor, video_queries: Optional[Tensor],
                      fused_sentence_feat: Optional[Tensor], targets: List[InstanceData],
                      batch_data_samples) -> List[List[Tuple[Tensor, Tensor]]]:
        """``match`` with the targets already built (``get_targets``)."""
        return [self._match_layer(all_cls[l].detach(), all_boxes[l].detach(), all_masks[l].detach(),
                                  None if video_queries is None else video_queries[l].detach(),
                                  None if fused_sentence_feat is None else fused_sentence_feat.detach(),
                                  targets, batch_data_samples)
                for l in range(len(all_cls))]

    # ------------------------------------------------------------------ losses
    def loss(self, hidden_states: Tensor, references: Sequence[Tensor], mask_feats: Tensor,
             video_queries: Tensor, fused_sentence_feat: Tensor,
             batch_data_samples: Sequence[RVOSDataSample]) -> Dict[str, Tensor]:
        """forward + ``loss_by_feat`` (arguments: the detector's ``head_inputs_dict``)."""
        img_sizes = self._img_sizes(batch_data_samples, mask_feats.device)
        all_cls, all_boxes, all_masks = self(hidden_states, references, mask_feats, img_sizes)
        return self.loss_by_feat(all_cls, all_boxes, all_masks, video_queries, fused_sentence_feat,
                                 batch_data_samples)

    def loss_by_feat(self, all_cls: Tensor, all_boxes: Tensor, all_masks: Tensor, video_queries: Tensor,
                     fused_sentence_feat: Tensor, batch_data_samples: Sequence[RVOSDataSample],
                     assignments: Optional[List[List[Tuple[Tensor, Tensor]]]] = None,
                     targets: Optional[Tuple[List[InstanceData], List[List[int]]]] = None) -> Dict[str, Tensor]:
        """Weighted losses of every decoder layer.

        Args:
            all_cls (Tensor): [L, B, T, nq, K] logits.
            all_boxes (Tensor): [L, B, T, nq, 4] normalised cxcywh.
            all_masks (Tensor): [L, B, T, nq, h, w] logits on the padded canvas at the mask stride.
            video_queries (Tensor): [L, B, nq, C] VOC outputs of each decoder layer.
            fused_sentence_feat (Tensor): [B, C] sentence feature of the contrastive loss.
            assignments (list, optional): the assignment of every layer (``match``'s output), for a caller that
                needs it too (a subclass's extra loss); None: matched here.
            targets (tuple, optional): ``get_targets``'s output ``(targets, ref_indices)`` for these samples, for
                a caller that built them already; None: built here.
        """
        if targets is None:
            targets = self.get_targets(batch_data_samples, self._canvas_size(batch_data_samples), all_cls.device)
        targets, ref_indices = targets
        if len(targets) != len(batch_data_samples):
            raise ValueError(f'SOCHead.loss_by_feat: {len(targets)} targets for {len(batch_data_samples)} samples')
        num_masks = self._num_masks(targets)
        num_layers = len(all_cls)
        if assignments is None:
            assignments = self._match_layers(all_cls, all_boxes, all_masks, video_queries, fused_sentence_feat,
                                             targets, batch_data_samples)
        elif len(assignments) != num_layers:
            raise ValueError(f'SOCHead.loss_by_feat: {len(assignments)} assignments for {num_layers} decoder layers')
        losses = {}
        for l in range(num_layers):
            layer_losses = self.loss_by_feat_single(all_cls[l], all_boxes[l], all_masks[l], video_queries[l],
                                                    fused_sentence_feat, targets, ref_indices, assignments[l],
                                                    num_masks)
            prefix = '' if l == num_layers - 1 else f'd{l}.'
            losses.update({prefix + k: v for k, v in layer_losses.items()})
        return losses

    @staticmethod
    def class_target(target: InstanceData, ref: int, num_classes: int) -> Optional[int]:
        """The class a query matched to referred object ``ref`` is a positive of, on the frames where the
        object is visible: 0 (the binary "referred" class) when ``num_classes == 1``, else its label;
        None: no class positive."""
        return 0 if num_classes == 1 else int(target.labels[ref])

    @staticmethod
    def matched_referred(indices: List[Tuple[Tensor, Tensor]],
                         ref_indices: List[List[int]]) -> Iterator[Tuple[int, int, int]]:
        """``(b, ref, q)``: query ``q`` is matched to referred object ``ref`` (an index of sample ``b``'s
        targets) -- the positives of the class loss, on the frames where ``ref`` is visible."""
        for b, ((q_idx, g_idx), refs) in enumerate(zip(indices, ref_indices)):
            for ref in refs:
                hit = (g_idx == ref).nonzero().flatten()
                if len(hit):
                    yield b, ref, int(q_idx[hit[0]])

    def loss_by_feat_single(self, cls: Tensor, boxes: Tensor, masks: Tensor, video_queries: Tensor,
                            fused_sentence_feat: Tensor, targets: List[InstanceData],
                            ref_indices: List[List[int]],
                            indices: List[Tuple[Tensor, Tensor]], num_masks: float) -> Dict[str, Tensor]:
        """Losses of one decoder layer given the assignment (same for every frame of a video)."""
        B, T, nq, K = cls.shape
        # class: positives = the queries matched to the referred objects (one, several or none), on
        # the frames where each is visible; every other query / frame is pushed to "no object"
        cls_target = torch.zeros_like(cls)
        positive_queries = torch.zeros(B, nq, dtype=torch.bool, device=cls.device)
        for b, ref, q in self.matched_referred(indices, ref_indices):
            positive_queries[b, q] = True
            label = self.class_target(targets[b], ref, K)
            if label is None:
                continue
            if not 0 <= label < K:
                raise ValueError(f'SOCHead: label {label} of sample {b} outside [0, {K})')
            cls_target[b, targets[b].visible[ref], q, label] = 1
        loss_cls = self.loss_cls(cls.reshape(-1, K), cls_target.reshape(-1, K), avg_factor=num_masks)
        loss_con = self.loss_con(video_queries, fused_sentence_feat, positive_queries)

        # masks / boxes of every matched pair on every frame (absent frames included)
        pred_masks, gt_masks, pred_boxes, gt_boxes = [], [], [], []
        for b, ((q_idx, g_idx), target) in enumerate(zip(indices, targets)):
            pred_masks.append(masks[b][:, q_idx].flatten(0, 1))
            gt_masks.append(target.masks[g_idx].transpose(0, 1).flatten(0, 1))
            pred_boxes.append(boxes[b][:, q_idx].flatten(0, 1))
            gt_boxes.append(target.boxes[g_idx].transpose(0, 1).flatten(0, 1))
        pred_masks, gt_masks = torch.cat(pred_masks), torch.cat(gt_masks)
        pred_boxes, gt_boxes = torch.cat(pred_boxes), torch.cat(gt_boxes)
        if len(pred_masks) == 0:
            zero = masks.sum() * 0 + boxes.sum() * 0
            return dict(loss_cls=loss_cls, loss_bbox=zero, loss_iou=zero, loss_mask=zero,
                        loss_dice=zero, loss_con=loss_con)
        canvas = gt_masks.shape[-2:]
        pred_masks = F.interpolate(pred_masks[:, None], size=canvas, mode='bilinear',
                                   align_corners=False)[:, 0]
        loss_mask = self.loss_mask(pred_masks.flatten(1), gt_masks.flatten(1),
                                   avg_factor=num_masks * canvas[0] * canvas[1])
        loss_dice = self.loss_dice(pred_masks, gt_masks, avg_factor=num_masks)
        loss_bbox = self.loss_bbox(pred_boxes, gt_boxes, avg_factor=num_masks)
        loss_iou = self.loss_iou(bbox_cxcywh_to_xyxy(pred_boxes), bbox_cxcywh_to_xyxy(gt_boxes),
                                 avg_factor=num_masks)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_iou=loss_iou, loss_mask=loss_mask,
                    loss_dice=loss_dice, loss_con=loss_con)

    # ------------------------------------------------------------------ inference
    @property
    def test_options(self) -> RVOSTestOptions:
        """The test options the head reads (``output_layer``, ``object_selection``, ``score_thr``,
        ``allow_no_target``, ``return_all_queries``). Set a new ``RVOSTestOptions`` to change them."""
        return self._test_options

    @test_options.setter
    def test_options(self, options: RVOSTestOptions) -> None:
        if not isinstance(options, RVOSTestOptions):
            raise TypeError(f'SOCHead.test_options must be an RVOSTestOptions (RVOSTestOptions.from_cfg(dict)), '
                            f'got {type(options).__name__}')
        options.layer_index(self.num_pred_layer)
        self._test_options = options

    @property
    def test_cfg(self) -> Mapping:
        """Read-only ``test_cfg`` view of ``test_options``."""
        return self._test_options.as_mapping()

    @staticmethod
    def _img_sizes(batch_data_samples, device) -> Tensor:
        return torch.tensor([list(s.metainfo['img_shape'][:2]) for s in batch_data_samples],
                            dtype=torch.long, device=device)

    def _options(self, options: Optional[RVOSTestOptions]) -> RVOSTestOptions:
        """The options of one call: ``options`` when given (checked), else ``self.test_options``."""
        if options is None:
            return self._test_options
        if not isinstance(options, RVOSTestOptions):
            raise TypeError(f'SOCHead: options must be an RVOSTestOptions (RVOSTestOptions.from_cfg(dict)), '
                            f'got {type(options).__name__}')
        options.layer_index(self.num_pred_layer)
        return options

    def predict(self, hidden_states: Tensor, references: Sequence[Tensor], mask_feats: Tensor,
                batch_data_samples: Sequence[RVOSDataSample], rescale: bool = True,
                options: Optional[RVOSTestOptions] = None, **head_inputs) -> List[InstanceData]:
        """Heads of decoder layer ``test_cfg.output_layer`` (default 'first'), then ``predict_by_feat``.

        ``options``: the test options of this call only (e.g. a request's object selection; the
        head's ``test_options`` are neither read nor changed); None: ``self.test_options``.
        ``head_inputs``: the other inputs a subclass's ``predict_candidates`` takes (``predict_inputs``)."""
        options = self._options(options)
        candidates = self.predict_candidates(hidden_states, references, mask_feats, batch_data_samples,
                                             options=options, **head_inputs)
        return self.predict_by_feat(candidates['cls'], candidates['masks'], [s.metainfo for s in batch_data_samples],
                                    rescale=rescale, options=options, presence=candidates.get('presence'))

    #: the ``head_inputs_dict`` entries (``SOC.forward_transformer``) that ``predict`` / ``predict_candidates``
    #: take besides ``batch_data_samples``
    predict_inputs = ('hidden_states', 'references', 'mask_feats')

    def predict_candidates(self, hidden_states: Tensor, references: Sequence[Tensor], mask_feats: Tensor,
                           batch_data_samples: Sequence[RVOSDataSample],
                           options: Optional[RVOSTestOptions] = None) -> Dict[str, Tensor]:
        """Every query's outputs at decoder layer ``test_cfg.output_layer``, before any selection.

        Args: as ``predict`` (``hidden_states`` [L, B, T, nq, C], ...).

        Returns:
            dict: ``cls`` [B, T, nq, K] class logits, ``masks`` [B, T, nq, h, w] mask logits (what
            ``predict_by_feat`` post-processes) and ``query_feats`` [B, nq, C], each query's
            embedding (the layer's hidden state averaged over the T frames: frame query + video
            query); the video-inference layer matches candidates across clips with the last two.
        """
        options = self._options(options)
        layer = options.layer_index(len(hidden_states))
        img_sizes = self._img_sizes(batch_data_samples, mask_feats.device)
        cls, _, masks = self.forward_single(hidden_states[layer], references[layer],
                                            references[layer + 1][..., :2], mask_feats, img_sizes, layer)
        return dict(cls=cls, masks=masks, query_feats=hidden_states[layer].mean(1))

    #: the names of ``frame_outputs`` (SOC's head has none)
    frame_output_names: Tuple[str, ...] = ()

    def frame_outputs(self, layer: int, img_sizes: Tensor, **head_inputs) -> Dict[str, Tensor]:
        """Per-frame outputs of a head variant besides the class and mask logits, each [B, T, nq], by the
        keyword ``predict_by_feat`` takes it (``head_inputs``: the ``predict_inputs`` entries; ``img_sizes`` [B, 2]
        unpadded (h, w)). SOC's head has none; ``predict_candidates`` of a variant returns them and the ONNX
        export adds them to the graph."""
        return {}

    @torch.no_grad()
    def predict_by_feat(self, cls: Tensor, masks: Tensor, batch_img_metas: Sequence[dict],
                        rescale: bool = True, options: Optional[RVOSTestOptions] = None,
                        selected: Optional[Sequence[Tensor]] = None,
                        presence: Optional[Tensor] = None) -> List[InstanceData]:
        """Post-process: one ``InstanceData`` per sample whose items are its T frames.

        Each video query's score is its class probability averaged over the T frames (max over the
        classes): ``prob.mean(T).max(K)``. The expression's objects are chosen by
        ``test_cfg.object_selection`` (``select_objects``):

        * 'top1' (default; official Ref-YouTube-VOS rule): the query with the highest score;
        * 'threshold' (MeViS: several objects, or none): every query whose score is above
          ``test_cfg.score_thr``, the top-1 query when none is (or none at all with
          ``test_cfg.allow_no_target=True``: empty masks).

        Mask logits are upsampled bilinearly to the padded input size, thresholded at 0.5 after
        sigmoid, cropped to ``img_shape`` and (``rescale``) resized to ``ori_shape`` with nearest
        interpolation; the expression's mask is the union of the selected objects' masks.

        Absence over time (``test_cfg.presence_thr``, default None: off): on each frame, a selected
        object whose frame score (its max-class probability on that frame; trained to be positive only
        on the frames where the referred object is visible) is not above ``presence_thr`` is absent
        there: its mask on that frame is empty (with 'top1' the expression's mask; with 'threshold'
        that object's slot of ``object_masks`` and so its part of the union). Scores are unchanged. A head
        with a presence branch of its own (``PresenceSOCHead``) gives its probabilities as ``presence``,
        which ``presence_thr`` then thresholds instead of the frame scores.

        Args:
            cls (Tensor): [B, T, nq, K] class logits.
            masks (Tensor): [B, T, nq, h, w] mask logits.
            batch_img_metas (list[dict]): ``img_shape``, ``ori_shape`` (``rescale``) and the padded
                size (``batch_input_shape`` / ``pad_shape``, else the largest ``img_shape``).
            options (RVOSTestOptions, optional): the options of this call (``object_selection``,
                ``score_thr``, ...); None: ``self.test_options``.
            selected (list[Tensor], optional): per sample, int64 [k] query indices chosen by the caller
                (best first; 'top1': exactly one), instead of ``select_objects`` (the video-inference
                layer's choice across clips, ``test_cfg.link_clips``). None: ``select_objects``.
            presence (Tensor, optional): [B, T, nq] per-frame presence probabilities that ``presence_thr``
                thresholds (``predict_candidates``'s ``presence``, from a head that has them); None: the frame
                scores.

        Returns:
            list[InstanceData]: per sample, fields over its T frames: ``masks`` bool [T, H0, W0]
            (union of the selected objects' masks; all False when none is selected), ``scores`` [T]
            (per frame, the highest max-class probability of the selected objects; 0 when none),
            ``query_index`` int64 [T] (the best selected query, -1 when none). With 'threshold' also
            the k selected objects (best first): ``object_masks`` bool [T, k, H0, W0],
            ``object_scores`` [T, k] (per-frame max class probability), ``object_query_index`` int64
            [T, k]. With ``test_cfg.return_all_queries`` also ``query_masks`` bool [T, nq, H0, W0]
            and ``query_scores`` [T, nq] (first-class probability of every query). The results of
            consecutive clips concatenate with ``merge_clip_results`` (each clip selects its own
            objects).
        """
        canvas = self._canvas_size(batch_img_metas)
        video_scores, frame_scores = query_scores(cls)  # [B, nq], [B, T, nq]
        options = self._options(options)
        mode, score_thr, allow_no_target = options.object_selection, options.score_thr, options.allow_no_target
        return_all = options.return_all_queries
        presence_thr = options.presence_thr
        presence = frame_scores if presence is None else presence.to(frame_scores.dtype)
        num_frames = cls.shape[1]
        if presence.shape != frame_scores.shape:
            raise ValueError(f'SOCHead.predict_by_feat: presence must be [B, T, nq] = {tuple(frame_scores.shape)}, '
                             f'got {tuple(presence.shape)}')
        if selected is not None and len(selected) != len(batch_img_metas):
            raise ValueError(f'SOCHead.predict_by_feat: {len(selected)} selections for {len(batch_img_metas)} samples')
        results = []
        for b, meta in enumerate(batch_img_metas):
            if selected is None:
                chosen = select_objects(video_scores[b], mode, score_thr, allow_no_target)  # [k]
            else:
                chosen = self._check_selection(selected[b], b, mode, video_scores.shape[1], video_scores.device)
            result = InstanceData()
            if mode == 'top1':
                q = chosen[0]
                result.masks = self._binarize(masks[b, :, q][:, None], meta, canvas, rescale)[:, 0]
                result.scores = frame_scores[b, :, q]
                result.query_index = q.expand(num_frames).clone()
                if presence_thr is not None:
                    result.masks &= (presence[b, :, q] > presence_thr)[:, None, None]
            else:
                object_masks = self._binarize(masks[b][:, chosen], meta, canvas, rescale)  # [T, k, H0, W0]
                object_scores = frame_scores[b][:, chosen]  # [T, k]
                if presence_thr is not None:
                    object_masks &= (presence[b][:, chosen] > presence_thr)[..., None, None]
                result.masks = object_masks.any(1)
                if len(chosen):
                    result.scores = object_scores.max(1)[0]
                    result.query_index = chosen[0].expand(num_frames).clone()
                else:
                    result.scores = frame_scores.new_zeros(num_frames)
                    result.query_index = chosen.new_full((num_frames, ), -1)
                result.object_masks = object_masks
                result.object_scores = object_scores
                result.object_query_index = chosen.expand(num_frames, -1).clone()
            if return_all:
                result.query_masks = self._binarize(masks[b], meta, canvas, rescale)  # [T, nq, H0, W0]
                result.query_scores = cls[b, :, :, 0].sigmoid()
            results.append(result)
        return results

    @staticmethod
    def _check_selection(chosen: Tensor, index: int, mode: str, num_queries: int, device) -> Tensor:
        """A caller's selection for sample ``index``: int64 [k] distinct query indices in [0, nq) (one for 'top1')."""
        if not isinstance(chosen, Tensor) or chosen.dim() != 1 or chosen.dtype != torch.long:
            raise ValueError(f'SOCHead.predict_by_feat: selected[{index}] must be an int64 tensor [k] of query '
                             f'indices, got {getattr(chosen, "dtype", type(chosen).__name__)} '
                             f'{tuple(getattr(chosen, "shape", ()))}')
        if mode == 'top1' and chosen.numel() != 1:
            raise ValueError(f"SOCHead.predict_by_feat: top-1 selection needs one query for sample {index}, "
                             f'got {chosen.tolist()}')
        if chosen.numel() and (int(chosen.min()) < 0 or int(chosen.max()) >= num_queries
                               or len(set(chosen.tolist())) != chosen.numel()):
            raise ValueError(f'SOCHead.predict_by_feat: selected[{index}] must be distinct query indices in '
                             f'[0, {num_queries}), got {chosen.tolist()}')
        return chosen.to(device)

    @staticmethod
    def _binarize(logits: Tensor, meta: dict, canvas: Tuple[int, int], rescale: bool) -> Tensor:
        """logits [T, n, h, w] -> bool [T, n, H0, W0] (or [T, n, h_img, w_img] without rescale)."""
        h, w = meta['img_shape'][:2]
        if logits.shape[1] == 0:  # no object selected
            out_hw = tuple(meta['ori_shape'][:2]) if rescale else (h, w)
            return logits.new_zeros((logits.shape[0], 0, *out_hw), dtype=torch.bool)
        up = F.interpolate(logits, size=canvas, mode='bilinear', align_corners=False)
        binary = (up.sigmoid() > 0.5)[:, :, :h, :w]
        if rescale:
            binary = F.interpolate(binary.float(), size=tuple(meta['ori_shape'][:2]), mode='nearest') > 0.5
        return binary
