"""SOC detector: Semantic-assisted Object Cluster for referring video object segmentation.

Split like mmdet's ``DeformableDETR``; frames of all clips are batched
batch-major ``(b t)`` through backbone, neck and the deformable transformer.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers import (DeformableDetrTransformerDecoder, DeformableDetrTransformerEncoder,
                                 SinePositionalEncoding)
from mmengine.model import BaseModel, xavier_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from soc_mm.registry import MODELS
from soc_mm.structures import RVOSDataSample
from ..layers.positional_encoding import SinePositionalEncoding1D
from ..layers.vision_language_fusion import VisionLanguageFusion

ForwardResults = Union[Dict[str, Tensor], list]


@MODELS.register_module()
class SOC(BaseModel):
    """SOC (NeurIPS 2023) referring video object segmentation model.

    Pipeline: Video-Swin backbone (per-frame features of 4 stages) ->
    ChannelMapper neck (stages 2-4 + one stride-64 level) -> vision/language
    fusion (``vlf`` on every level, ``lvf`` gives the fused sentence feature)
    -> deformable encoder/decoder with learned queries shared by all frames
    -> VOC (frame queries of a video -> video queries, from the sentence
    feature) -> head on ``hs[l] + voc`` (classes, boxes, dynamic masks on the
    spatial decoder's mask features).

    Args:
        backbone, text_encoder, neck, voc, spatial_decoder, bbox_head (dict):
            configs of the sub-modules (``VideoSwinTransformer``,
            ``RoBERTaTextEncoder``, ``mmdet.ChannelMapper``, ``VOC``,
            ``SOCSpatialDecoder``, ``SOCHead``).
        encoder, decoder (dict): configs of mmdet's
            ``DeformableDetrTransformerEncoder`` / ``Decoder``
            (``num_layers``, ``layer_cfg``; decoder ``return_intermediate=True``).
        positional_encoding (dict): mmdet ``SinePositionalEncoding`` args for
            visual levels (SOC: ``num_feats=C/2, normalize=True, offset=-0.5``).
        text_positional_encoding (dict): ``SinePositionalEncoding1D`` args
            (SOC: ``num_feats=C``).
        fusion (dict): ``VisionLanguageFusion`` args for ``vlf`` and ``lvf``.
        num_queries (int): object queries per frame.
        num_feature_levels (int): levels of the deformable transformer.
        with_box_refine (bool): iterative box refinement in the decoder with
            the head's regression branches.
        voc_batch_regroup_compat (bool): reproduce the official VOC batch
            regrouping (frame queries ``[L, T, B]`` reshaped, not transposed,
            to ``[L*B, T]``), which mixes videos when B > 1 and T > 1. Only
            for comparing with the official code; default False (per video).
        train_cfg (dict): passed to the head.
        test_cfg (dict): passed to the head; ``output_level`` ('first' |
            'last' | level index, default 'first') picks the decoder level whose
            heads give the eval outputs (the head receives the index). The
            official eval returns level 0 (with the VOC output of the last
            level added); 'last' uses the last level's heads.
        data_preprocessor (dict): ``RVOSDataPreprocessor`` config.
    """

    def __init__(self,
                 backbone: dict,
                 text_encoder: dict,
                 neck: dict,
                 encoder: dict,
                 decoder: dict,
                 voc: dict,
                 spatial_decoder: dict,
                 bbox_head: dict,
                 positional_encoding: Optional[dict] = None,
                 text_positional_encoding: Optional[dict] = None,
                 fusion: Optional[dict] = None,
                 num_queries: int = 5,
                 num_feature_levels: int = 4,
                 with_box_refine: bool = True,
                 voc_batch_regroup_compat: bool = False,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})
        num_levels = decoder['num_layers']
        output_level = self.test_cfg.get('output_level', 'first')
        if output_level in ('first', 'last'):
            output_level = 0 if output_level == 'first' else num_levels - 1
        if not isinstance(output_level, int) or not -num_levels <= output_level < num_levels:
            raise ValueError("test_cfg.output_level must be 'first', 'last' or a decoder level index, "
                             f'got {self.test_cfg["output_level"]!r}')
        self.output_level = output_level
        self.test_cfg['output_level'] = output_level  # the head takes the level index
        self.num_queries = num_queries
        self.num_feature_levels = num_feature_levels
        self.with_box_refine = with_box_refine
        self.voc_batch_regroup_compat = voc_batch_regroup_compat
        # the neck maps the last 3 backbone stages (strides 8/16/32); further levels are extra convs
        self.num_backbone_levels = 3

        self.backbone = MODELS.build(backbone)
        self.text_encoder = MODELS.build(text_encoder)
        self.neck = MODELS.build(neck)
        self.encoder = DeformableDetrTransformerEncoder(**copy.deepcopy(encoder))
        decoder = copy.deepcopy(decoder)
        decoder.setdefault('post_norm_cfg', None)  # mmdet's Deformable decoder has no final norm
        self.decoder = DeformableDetrTransformerDecoder(**decoder)
        self.embed_dims = self.encoder.embed_dims
        C = self.embed_dims
        self.positional_encoding = SinePositionalEncoding(
            **(positional_encoding or dict(num_feats=C // 2, normalize=True, offset=-0.5)))
        if self.positional_encoding.num_feats * 2 != C:
            raise ValueError(f'positional_encoding.num_feats must be embed_dims/2 = {C // 2}')
        self.text_positional_encoding = SinePositionalEncoding1D(
            **(text_positional_encoding or dict(num_feats=C)))
        fusion = fusion or dict(embed_dims=C, num_heads=8)
        self.vlf = VisionLanguageFusion(**fusion)
        self.lvf = VisionLanguageFusion(**fusion)
        self.level_embed = nn.Parameter(torch.zeros(num_feature_levels, C))  # normal_ in init_weights
        self.reference_points_fc = nn.Linear(C, 2)
        self.query_embedding = nn.Embedding(num_queries, C)
        self.voc = MODELS.build(voc)
        self.spatial_decoder = MODELS.build(spatial_decoder)
        bbox_head = copy.deepcopy(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=self.test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        if with_box_refine and len(self.bbox_head.reg_branches) != self.decoder.num_layers:
            raise ValueError(f'with_box_refine needs one head regression branch per decoder layer: '
                             f'{len(self.bbox_head.reg_branches)} branches, {self.decoder.num_layers} layers')
        if self.text_encoder.embed_dims != C:
            raise ValueError(f'text_encoder.embed_dims ({self.text_encoder.embed_dims}) must equal '
                             f'the transformer embed_dims ({C})')

    def init_weights(self) -> None:
        """Sub-modules' own init, then Deformable-DETR's transformer init (as SOC)."""
        super().init_weights()
        for coder in (self.encoder, self.decoder):
            for p in coder.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        xavier_init(self.reference_points_fc, distribution='uniform', bias=0.)
        nn.init.normal_(self.level_embed)

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def get_frame_index(batch_data_samples: Sequence, num_frames: int,
                        device: Union[str, torch.device] = 'cpu') -> Optional[Tensor]:
        """Indices into the ``(b t)`` frame batch of the frames kept after the
        backbone (``valid_frame_idx`` metainfo, A2D: the annotated frame).

        Returns None when every sample keeps all frames; otherwise int64
        ``[B * T_out]`` with ``b * T + t`` (official ``valid_indices``).
        """
        per_sample = [s.metainfo.get('valid_frame_idx', None) for s in batch_data_samples]
        if all(idx is None for idx in per_sample):
            return None
        index = []
        for b, idx in enumerate(per_sample):
            idx = list(range(num_frames)) if idx is None else [int(i) for i in idx]
            if not idx or any(i < 0 or i >= num_frames for i in idx):
                raise ValueError(f'sample {b}: valid_frame_idx {per_sample[b]} must be non-empty '
                                 f'clip indices in [0, {num_frames})')
            index.append([b * num_frames + i for i in idx])
        if len({len(i) for i in index}) != 1:
            raise ValueError('all samples of a batch need the same number of valid_frame_idx, '
                             f'got {[len(i) for i in index]}')
        return torch.tensor(index, dtype=torch.long, device=device).flatten()

    @staticmethod
    def get_img_shapes(batch_data_samples: Sequence, pad_hw: Sequence[int]) -> List[Tuple[int, int]]:
        """Unpadded (h, w) of every sample (metainfo ``img_shape``)."""
        shapes = []
        for b, sample in enumerate(batch_data_samples):
            if 'img_shape' not in sample:
                raise ValueError(f'sample {b}: metainfo img_shape (unpadded h, w) is missing')
            h, w = (int(v) for v in sample.img_shape[:2])
            if h > pad_hw[0] or w > pad_hw[1]:
                raise ValueError(f'sample {b}: img_shape {(h, w)} exceeds the padded input {tuple(pad_hw)}')
            shapes.append((h, w))
        return shapes

    @staticmethod
    def get_texts(batch_data_samples: Sequence) -> List[str]:
        """Referring expressions (metainfo ``expression``)."""
        texts = []
        for b, sample in enumerate(batch_data_samples):
            if 'expression' not in sample:
                raise ValueError(f'sample {b}: metainfo expression (referring text) is missing')
            texts.append(sample.expression)
        return texts

    @staticmethod
    def padding_masks(img_shapes: Sequence[Tuple[int, int]], pad_hw: Sequence[int], frames_per_video: int,
                      device: Union[str, torch.device]) -> Tensor:
        """bool ``[(B*T), Hp, Wp]``, True on padded pixels (bottom/right)."""
        masks = torch.ones(len(img_shapes), *pad_hw, dtype=torch.bool, device=device)
        for b, (h, w) in enumerate(img_shapes):
            masks[b, :h, :w] = False
        return masks.repeat_interleave(frames_per_video, dim=0)

    # ------------------------------------------------------------------ features
    def extract_video_feat(self, inputs: Tensor, frame_index: Optional[Tensor] = None) -> List[Tensor]:
        """inputs [B, T, 3, H, W] -> backbone maps [(B*T_out), C_i, h_i, w_i]."""
        feats = self.backbone(inputs)
        if frame_index is not None:
            feats = [f.index_select(0, frame_index) for f in feats]
        return feats

    def extract_text_feat(self, texts: Sequence[str]) -> Tuple[Tensor, Tensor, Tensor]:
        """-> word features [B, S, C], word padding mask [B, S], sentence feature [B, C]."""
        return self.text_encoder(texts)

    def fuse(self, mlvl_feats: Sequence[Tensor], mlvl_masks: Sequence[Tensor], mlvl_pos: Sequence[Tensor],
             words: Tensor, word_mask: Tensor, num_videos: int) -> Tuple[List[Tensor], Tensor]:
        """Vision-language fusion of the neck levels.

        Every level: the visual tokens of a video (``t h w``) attend to the
        words (``vlf``). The words attend to the visual tokens (``lvf``, keys
        with the level's 2-D position) of the last backbone-derived level
        (stride 32); SOC computes ``lvf`` on the strides 8/16 too but never
        uses those results, so they are skipped.

        Returns: fused levels [(B*T), C, h, w] and fused words [B, S, C].
        """
        text_pos = self.text_positional_encoding(word_mask)
        lvf_level = self.num_backbone_levels - 1
        fused, fused_words = [], None
        for lvl, feat in enumerate(mlvl_feats):
            h, w = feat.shape[-2:]
            tokens = rearrange(feat, '(b t) c h w -> b (t h w) c', b=num_videos)
            if lvl == lvf_level:
                fused_words = self.lvf(
                    words, tokens,
                    key_pos=rearrange(mlvl_pos[lvl], '(b t) c h w -> b (t h w) c', b=num_videos),
                    key_padding_mask=rearrange(mlvl_masks[lvl], '(b t) h w -> b (t h w)', b=num_videos))
            tokens = self.vlf(tokens, words, key_pos=text_pos, key_padding_mask=word_mask)
            fused.append(rearrange(tokens, 'b (t h w) c -> (b t) c h w', h=h, w=w))
        return fused, fused_words

    @staticmethod
    def sentence_from_words(words: Tensor, word_mask: Tensor) -> Tensor:
        """Mean over non-pad tokens: [B, S, C], [B, S] -> [B, C]."""
        valid = (~word_mask).to(words.dtype)[..., None]
        return (words * valid).sum(1) / valid.sum(1).clamp(min=1)

    def pre_transformer(self, mlvl_feats: Sequence[Tensor], mlvl_masks: Sequence[Tensor],
                        mlvl_pos: Sequence[Tensor]) -> Tuple[Dict, Dict]:
        """Flatten the levels (as mmdet's ``DeformableDETR.pre_transformer``, masks given)."""
        feat_flatten, pos_flatten, mask_flatten, spatial_shapes = [], [], [], []
        for lvl, (feat, mask, pos) in enumerate(zip(mlvl_feats, mlvl_masks, mlvl_pos)):
            spatial_shapes.append(feat.shape[-2:])
            feat_flatten.append(feat.flatten(2).transpose(1, 2))
            pos_flatten.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
            mask_flatten.append(mask.flatten(1))
        feat_flatten = torch.cat(feat_flatten, 1)
        spatial_shapes = torch.as_tensor(spatial_shapes, dtype=torch.long, device=feat_flatten.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([DeformableDETR.get_valid_ratio(m) for m in mlvl_masks], 1)
        mask_flatten = torch.cat(mask_flatten, 1)
        encoder_inputs = dict(feat=feat_flatten, feat_mask=mask_flatten, feat_pos=torch.cat(pos_flatten, 1),
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                              valid_ratios=valid_ratios)
        decoder_inputs = dict(memory_mask=mask_flatten, spatial_shapes=spatial_shapes,
                              level_start_index=level_start_index, valid_ratios=valid_ratios)
        return encoder_inputs, decoder_inputs

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor, feat_pos: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor) -> Tensor:
        """-> memory [(B*T), sum(h*w), C]."""
        return self.encoder(query=feat, query_pos=feat_pos, key_padding_mask=feat_mask,
                            spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                            valid_ratios=valid_ratios)

    def pre_decoder(self, num_frames: int) -> Tuple[Tensor, Tensor, Tensor]:
        """Learned queries shared by every frame: zero content, ``query_embedding``
        as position, initial reference points from a Linear.

        Returns query, query_pos [(B*T), nq, C] and reference points [(B*T), nq, 2].
        """
        query_pos = self.query_embedding.weight[None].expand(num_frames, -1, -1)
        query = torch.zeros_like(query_pos)
        reference_points = self.reference_points_fc(query_pos).sigmoid()
        return query, query_pos, reference_points

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Tensor,
                        reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                        valid_ratios: Tensor) -> Tuple[Tensor, Tensor]:
        """-> hs [L, (B*T), nq, C], inter_references [L, (B*T), nq, 4] (refined by each level)."""
        reg_branches = self.bbox_head.reg_branches if self.with_box_refine else None
        hs, inter_references = self.decoder(
            query=query, query_pos=query_pos, value=memory, key_padding_mask=memory_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios, reg_branches=reg_branches)
        return hs, inter_references

    def forward_cluster(self, hs: Tensor, sentence_feat: Tensor) -> Tensor:
        """VOC on frame queries hs [L, B, T, nq, C] with the sentence feature [B, C].

        Training: every level; eval: the last level only (as SOC).
        Returns video queries [L', B, nq, C].
        """
        if not self.training:
            hs = hs[-1:]
        L, B, T, nq, C = hs.shape
        if self.voc_batch_regroup_compat:
            # official quirk: [L, T, B, ...] reshaped (not transposed) into per-video sequences
            hs = hs.transpose(1, 2).reshape(L, B, T, nq, C)
        video_queries = self.voc(hs.reshape(L * B, T, nq, C), sentence_feat.repeat(L, 1))
        return video_queries.view(L, B, -1, C)

    def memory_to_maps(self, memory: Tensor, spatial_shapes: Tensor) -> List[Tensor]:
        """Encoder memory -> maps [(B*T), C, h, w] of all levels but the last (strides 8-32)."""
        maps, start = [], 0
        for h, w in spatial_shapes[:-1].tolist():
            maps.append(rearrange(memory[:, start:start + h * w], 'n (h w) c -> n c h w', h=h, w=w))
            start += h * w
        return maps

    def forward_features(self, inputs: Tensor, batch_data_samples: Sequence) -> Dict[str, Tensor]:
        """Everything up to (not including) the head.

        Args:
            inputs (Tensor): normalised, padded clips [B, T, 3, Hp, Wp].
            batch_data_samples (list[RVOSDataSample]): metainfo ``img_shape``,
                ``expression`` and optional ``valid_frame_idx``.

        Returns:
            dict with (T = frames kept after ``valid_frame_idx``, L = decoder levels,
            L' = levels clustered by VOC: L in training, 1 in eval):
            ``text_words`` [B, S, C], ``text_mask`` [B, S], ``text_sentence`` [B, C]
            (projected pooler output), ``text_sentence_feature`` [B, C] (mean of lvf-fused
            words), ``backbone_feats`` list [(B*T), C_i, h, w], ``memory`` list of 3
            [(B*T), C, h, w], ``hs`` [L, B, T, nq, C], ``init_reference`` [B, T, nq, 2],
            ``inter_references`` [L, B, T, nq, 4], ``voc_hs`` [L', B, nq, C],
            ``hs_voc`` [L, B, T, nq, C] (= hs + voc_hs), ``mask_features`` [B, T, D, h4, w4],
            ``img_shapes`` int64 [B, 2] (unpadded h, w).
        """
        self._check_batch(inputs, batch_data_samples)
        words, word_mask, sentence = self.extract_text_feat(self.get_texts(batch_data_samples))
        visual = self.forward_visual(inputs, batch_data_samples)
        return self.forward_text_stages(visual, words, word_mask, sentence)

    def forward_features_shared(self, inputs: Tensor, batch_data_samples: Sequence,
                                clip_index: Tensor) -> Dict[str, Tensor]:
        """``forward_features`` for N (clip, expression) pairs over G distinct clips.

        The text-independent stages (backbone, neck, masks, positions) run once per
        clip; the text encoder and every text-dependent stage run batched over the N
        pairs (visual features expanded along the batch).

        Args:
            inputs (Tensor): the G distinct clips [G, T, 3, Hp, Wp].
            batch_data_samples (list[RVOSDataSample]): N samples (``expression`` each).
            clip_index (Tensor): int64 [N], the clip of every sample (samples sharing a
                clip must share its ``img_shape`` and ``valid_frame_idx``).

        Returns:
            the ``forward_features`` dict for the N pairs (B = N).
        """
        text, visual, clip_index = self._shared_stages(inputs, batch_data_samples, clip_index)
        return self.forward_text_stages(visual, *text, clip_index)

    def _shared_stages(self, inputs: Tensor, batch_data_samples: Sequence, clip_index: Tensor) -> Tuple:
        """Check a shared batch; run the text encoder (all N) and the visual stages (G clips)."""
        clip_index = torch.as_tensor(clip_index, dtype=torch.long, device=inputs.device).flatten()
        if clip_index.numel() != len(batch_data_samples):
            raise ValueError(f'clip_index has {clip_index.numel()} entries for {len(batch_data_samples)} samples')
        if inputs.dim() != 5:
            raise ValueError(f'SOC expects inputs [G, T, 3, H, W], got {tuple(inputs.shape)}')
        G = inputs.shape[0]
        if clip_index.numel() and (clip_index.min() < 0 or clip_index.max() >= G):
            raise ValueError(f'clip_index must lie in [0, {G}), got {clip_index.tolist()}')
        representative = {}
        for n, g in enumerate(clip_index.tolist()):
            first = representative.setdefault(g, n)
            for key in ('img_shape', 'valid_frame_idx'):
                a = batch_data_samples[first].metainfo.get(key)
                b = batch_data_samples[n].metainfo.get(key)
                if (None if a is None else list(a)) != (None if b is None else list(b)):
                    raise ValueError(f'samples {first} and {n} share clip {g} but differ in {key}: {a} vs {b}')
        if sorted(representative) != list(range(G)):
            raise ValueError(f'every clip needs at least one sample: clip_index {clip_index.tolist()}, {G} clips')
        clip_samples = [batch_data_samples[representative[g]] for g in range(G)]
        text = self.extract_text_feat(self.get_texts(batch_data_samples))
        return text, self.forward_visual(inputs, clip_samples), clip_index

    @staticmethod
    def _check_batch(inputs: Tensor, batch_data_samples: Sequence) -> None:
        if inputs.dim() != 5:
            raise ValueError(f'SOC expects inputs [B, T, 3, H, W], got {tuple(inputs.shape)}')
        if len(batch_data_samples) != inputs.shape[0]:
            raise ValueError(f'{len(batch_data_samples)} data samples for a batch of {inputs.shape[0]} clips')

    def forward_visual(self, inputs: Tensor, batch_data_samples: Sequence) -> Dict:
        """Text-independent stages: backbone, neck, padding masks, positional encodings.

        Returns dict: ``backbone_feats`` list of 4 [(B*T), C_i, h, w], ``mlvl_feats`` /
        ``mlvl_pos`` lists [(B*T), C, h, w], ``mlvl_masks`` list [(B*T), h, w],
        ``img_shapes`` list of B (h, w), ``num_videos`` B, ``num_frames`` T (after
        ``valid_frame_idx``).
        """
        self._check_batch(inputs, batch_data_samples)
        B, T_in = inputs.shape[:2]
        pad_hw = tuple(inputs.shape[-2:])
        frame_index = self.get_frame_index(batch_data_samples, T_in, inputs.device)
        T = T_in if frame_index is None else frame_index.numel() // B
        img_shapes = self.get_img_shapes(batch_data_samples, pad_hw)
        backbone_feats = self.extract_video_feat(inputs, frame_index)
        masks = self.padding_masks(img_shapes, pad_hw, T, inputs.device)
        mlvl_feats = self.neck(tuple(backbone_feats[-self.num_backbone_levels:]))
        if len(mlvl_feats) != self.num_feature_levels:
            raise ValueError(f'the neck gives {len(mlvl_feats)} levels, num_feature_levels is '
                             f'{self.num_feature_levels}')
        mlvl_masks = [F.interpolate(masks[None].float(), size=f.shape[-2:]).to(torch.bool)[0] for f in mlvl_feats]
        mlvl_pos = [self.positional_encoding(m) for m in mlvl_masks]
        return dict(backbone_feats=list(backbone_feats), mlvl_feats=list(mlvl_feats), mlvl_masks=mlvl_masks,
                    mlvl_pos=mlvl_pos, img_shapes=img_shapes, num_videos=B, num_frames=T)

    @staticmethod
    def expand_visual(visual: Dict, clip_index: Tensor) -> Dict:
        """Repeat the per-clip visual features of ``forward_visual`` for N pairs:
        clip ``clip_index[n]`` becomes batch entry n (frames stay batch-major ``(n t)``)."""
        G, T = visual['num_videos'], visual['num_frames']
        if clip_index.numel() == G and torch.equal(clip_index.cpu(), torch.arange(G)):
            return visual
        frame_index = (clip_index[:, None] * T + torch.arange(T, device=clip_index.device)).flatten()
        frame_index = frame_index.to(visual['mlvl_feats'][0].device)
        out = dict(visual, num_videos=clip_index.numel(),
                   img_shapes=[visual['img_shapes'][g] for g in clip_index.tolist()])
        for key in ('backbone_feats', 'mlvl_feats', 'mlvl_masks', 'mlvl_pos'):
            out[key] = [x.index_select(0, frame_index) for x in visual[key]]
        return out

    def forward_text_stages(self, visual: Dict, words: Tensor, word_mask: Tensor, sentence: Tensor,
                            clip_index: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Text-dependent stages (fusion, deformable encoder/decoder, VOC, spatial decoder)
        on ``forward_visual``'s output; with ``clip_index`` [N] the clips are first expanded
        to the N (clip, expression) pairs of ``words`` [N, S, C]. Returns the
        ``forward_features`` dict."""
        if clip_index is not None:
            visual = self.expand_visual(visual, clip_index)
        B, T = visual['num_videos'], visual['num_frames']
        if words.shape[0] != B:
            raise ValueError(f'{words.shape[0]} expressions for {B} clips (pass clip_index to share clips)')
        backbone_feats, mlvl_masks, mlvl_pos = visual['backbone_feats'], visual['mlvl_masks'], visual['mlvl_pos']
        device = visual['mlvl_feats'][0].device
        fused, fused_words = self.fuse(visual['mlvl_feats'], mlvl_masks, mlvl_pos, words, word_mask, B)

        encoder_inputs, decoder_inputs = self.pre_transformer(fused, mlvl_masks, mlvl_pos)
        memory = self.forward_encoder(**encoder_inputs)
        query, query_pos, init_reference = self.pre_decoder(memory.shape[0])
        hs, inter_references = self.forward_decoder(query, query_pos, memory,
                                                    reference_points=init_reference, **decoder_inputs)
        memory_maps = self.memory_to_maps(memory, decoder_inputs['spatial_shapes'])

        split = dict(b=B, t=T)
        hs = rearrange(hs, 'l (b t) q c -> l b t q c', **split)
        voc_hs = self.forward_cluster(hs, sentence)
        mask_features = self.spatial_decoder(memory_maps[-1], memory_maps[-2::-1] + [backbone_feats[0]])
        return dict(
            text_words=words, text_mask=word_mask, text_sentence=sentence,
            text_sentence_feature=self.sentence_from_words(fused_words, word_mask),
            backbone_feats=backbone_feats, memory=memory_maps, hs=hs,
            init_reference=rearrange(init_reference, '(b t) q n -> b t q n', **split),
            inter_references=rearrange(inter_references, 'l (b t) q n -> l b t q n', **split),
            voc_hs=voc_hs, hs_voc=hs + voc_hs[:, :, None],
            mask_features=rearrange(mask_features, '(b t) d h w -> b t d h w', **split),
            img_shapes=torch.tensor(visual['img_shapes'], dtype=torch.long, device=device))

    # ------------------------------------------------------------------ heads
    @staticmethod
    def head_inputs(feats: Dict[str, Tensor]) -> Tuple[Tensor, List[Tensor], Tensor, Tensor]:
        """Per-level head inputs: hidden states ``hs + voc`` [L, B, T, nq, C]; box
        references (initial reference for level 0, the reference refined by level
        l-1 otherwise; list of L [B, T, nq, 2|4]); mask references (cx, cy refined
        by level l itself) [L, B, T, nq, 2]; mask features [B, T, D, h, w]."""
        inter = feats['inter_references']
        references = [feats['init_reference']] + [inter[l] for l in range(inter.shape[0] - 1)]
        return feats['hs_voc'], references, inter[..., :2], feats['mask_features']

    def loss(self, inputs: Tensor, data_samples: Sequence) -> Dict[str, Tensor]:
        """Losses of every decoder level (VOC on every level)."""
        feats = self.forward_features(inputs, data_samples)
        return self.bbox_head.loss(*self.head_inputs(feats), voc_embeds=feats['voc_hs'],
                                   sentence_feat=feats['text_sentence_feature'],
                                   batch_data_samples=data_samples)

    def predict(self, inputs: Tensor, data_samples: Sequence, rescale: bool = True) -> list:
        """Masks/scores of the ``test_cfg.output_level`` level, written into the data samples.

        Inference options (``test_cfg``):
            share_clips (bool, default True): samples whose clips are identical (same
                inputs, ``img_shape`` and ``valid_frame_idx``; e.g. the expressions of one
                video batched together) run the text-independent stages once
                (``forward_features_shared``).
            clip_len (int, default None = whole clip): clips longer than this are
                processed as consecutive clips of ``clip_len`` frames, one after another
                (each clip picks its own referred query, as separate clips would); only
                when every sample keeps all frames (no ``valid_frame_idx``).
            fast_kernels (bool, default False): switch the model to the fused inference
                kernels (``soc_mm.models.layers.fast_kernels``: SDPA window attention, per-level
                deformable-attention accumulation, bmm dynamic mask head; equal to float
                rounding) on the first call.
            expressions_per_batch (int, default None = all): shared batches run their
                text-dependent stages over at most this many expressions at a time (bounds
                the memory for videos with many expressions).
        """
        self._check_batch(inputs, data_samples)
        if self.test_cfg.get('fast_kernels', False) and not getattr(self, '_fast_kernels_enabled', False):
            from soc_mm.models.layers.fast_kernels import enable_fast_kernels  # inference-only kernels
            enable_fast_kernels(self)
            self._fast_kernels_enabled = True
        clip_index, unique = None, None
        if self.test_cfg.get('share_clips', True) and len(data_samples) > 1:
            unique, clip_index = self.group_identical_clips(inputs, data_samples)
            if len(unique) == len(data_samples):
                clip_index = None  # nothing to share: the plain path
        clip_len = self.test_cfg.get('clip_len', None)
        T = inputs.shape[1]
        all_frames = all(s.metainfo.get('valid_frame_idx', None) is None for s in data_samples)
        if clip_len is not None and int(clip_len) < 1:
            raise ValueError(f'test_cfg.clip_len must be a positive number of frames, got {clip_len!r}')
        if clip_len is None or T <= int(clip_len) or not all_frames:
            return self._predict_clip(inputs, data_samples, unique, clip_index, rescale)
        clip_len = int(clip_len)
        results = []
        for start in range(0, T, clip_len):
            chunk = [RVOSDataSample(metainfo=s.metainfo) for s in data_samples]
            results.append(self._predict_clip(inputs[:, start:start + clip_len], chunk, unique, clip_index,
                                              rescale))
        return self.merge_clip_predictions(data_samples, results)

    def predict_shared(self, inputs: Tensor, data_samples: Sequence, clip_index: Tensor,
                       rescale: bool = True) -> list:
        """Predict N (clip, expression) pairs over G distinct clips with one backbone pass
        per clip (``forward_features_shared``).

        Args:
            inputs (Tensor): normalised, padded clips [G, T, 3, Hp, Wp].
            data_samples (list[RVOSDataSample]): N samples (``expression``, ``img_shape``).
            clip_index (Tensor): int64 [N], the clip of every sample.
        Returns the N data samples with ``pred_masks`` / ``pred_scores`` (as ``predict``).
        """
        return self._predict_clip(inputs, data_samples, list(range(inputs.shape[0])), clip_index, rescale)

    def _predict_clip(self, inputs: Tensor, data_samples: Sequence, unique: Optional[List[int]],
                      clip_index: Optional[Tensor], rescale: bool) -> list:
        if clip_index is None:
            feats = self.forward_features(inputs, data_samples)
            return self.bbox_head.predict(*self.head_inputs(feats), batch_data_samples=data_samples,
                                          rescale=rescale)
        (words, word_mask, sentence), visual, clip_index = self._shared_stages(inputs[unique], data_samples,
                                                                               clip_index)
        chunk = self.test_cfg.get('expressions_per_batch', None)
        if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f'test_cfg.expressions_per_batch must be None or an int >= 1, got {chunk!r}')
        chunk = chunk or len(data_samples)
        results = []
        for start in range(0, len(data_samples), chunk):
            part = slice(start, start + chunk)
            feats = self.forward_text_stages(visual, words[part], word_mask[part], sentence[part],
                                             clip_index[part])
            results += self.bbox_head.predict(*self.head_inputs(feats), batch_data_samples=data_samples[part],
                                              rescale=rescale)
        return results

    @staticmethod
    def group_identical_clips(inputs: Tensor, data_samples: Sequence) -> Tuple[List[int], Tensor]:
        """Find samples with identical clips (inputs, ``img_shape``, ``valid_frame_idx``).

        Returns the batch index of each distinct clip (first occurrence) and int64
        ``clip_index`` [B] (index into those distinct clips)."""
        def key(sample):
            idx = sample.metainfo.get('valid_frame_idx', None)
            return (tuple(sample.metainfo.get('img_shape', ())[:2]), None if idx is None else tuple(idx))

        unique, clip_index = [], []
        for b, sample in enumerate(data_samples):
            for g, r in enumerate(unique):
                if key(sample) == key(data_samples[r]) and torch.equal(inputs[b], inputs[r]):
                    clip_index.append(g)
                    break
            else:
                unique.append(b)
                clip_index.append(len(unique) - 1)
        return unique, torch.tensor(clip_index, dtype=torch.long, device=inputs.device)

    @staticmethod
    def merge_clip_predictions(data_samples: Sequence, clip_results: Sequence[Sequence]) -> list:
        """Concatenate the per-clip predictions (``pred_masks`` [t, H0, W0], ``pred_scores``
        [t], optional ``pred_instances`` [nq, t, ...]) of consecutive clips over time."""
        for b, sample in enumerate(data_samples):
            parts = [clip[b] for clip in clip_results]
            sample.pred_masks = torch.cat([p.pred_masks for p in parts])
            sample.pred_scores = torch.cat([p.pred_scores for p in parts])
            if all('pred_instances' in p for p in parts):
                sample.pred_instances = InstanceData(
                    masks=torch.cat([p.pred_instances.masks for p in parts], dim=1),
                    scores=torch.cat([p.pred_instances.scores for p in parts], dim=1))
        return list(data_samples)

    def _forward(self, inputs: Tensor, data_samples: Sequence) -> Dict[str, Tensor]:
        """Raw outputs: ``forward_features`` plus head outputs of all levels
        (``cls`` [L, B, T, nq, K], ``boxes`` [L, B, T, nq, 4], ``masks`` [L, B, T, nq, h, w])."""
        feats = self.forward_features(inputs, data_samples)
        hidden, references, mask_references, mask_features = self.head_inputs(feats)
        feats['cls'], feats['boxes'], feats['masks'] = self.bbox_head(
            hidden, references, mask_references, mask_features, feats['img_shapes'])
        return feats

    def forward(self, inputs: Tensor, data_samples: Optional[Sequence] = None,
                mode: str = 'tensor') -> ForwardResults:
        if data_samples is None:
            raise ValueError('SOC needs data_samples (img_shape, expression metainfo) in every mode')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"Invalid mode {mode!r}: use 'loss', 'predict' or 'tensor'")

    # ------------------------------------------------------------------ official layout
    def official_outputs(self, inputs: Tensor, data_samples: Sequence) -> Dict:
        """The official model's output dict (for comparison with its fixtures).

        Keys ``pred_masks`` [T, B, nq, h, w], ``pred_cls`` [T, B, nq, K],
        ``pred_boxes`` [T, B, nq, 4], ``pred_logit`` [B, nq, C],
        ``text_sentence_feature`` [B, C], ``aux_outputs`` (list of dicts).
        Training mode: last level main, earlier levels in ``aux_outputs``; eval:
        the ``test_cfg.output_level`` level only and ``aux_outputs`` empty (as SOC).
        """
        feats = self.forward_features(inputs, data_samples)
        hidden, references, mask_references, mask_features = self.head_inputs(feats)
        num_levels = hidden.shape[0]
        levels = list(range(num_levels)) if self.training else [self.output_level % num_levels]
        outs = []
        for lvl in levels:
            cls, boxes, masks = self.bbox_head.forward_single(
                hidden[lvl], references[lvl], mask_references[lvl], mask_features, feats['img_shapes'], lvl)
            outs.append(dict(
                pred_masks=masks.transpose(0, 1), pred_cls=cls.transpose(0, 1), pred_boxes=boxes.transpose(0, 1),
                pred_logit=feats['voc_hs'][lvl if self.training else -1],
                text_sentence_feature=feats['text_sentence_feature']))
        out = outs[-1]
        out['aux_outputs'] = outs[:-1]
        return out
