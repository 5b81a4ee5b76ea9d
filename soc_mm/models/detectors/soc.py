"""SOC detector (NeurIPS 2023): the model's maths, stage by stage.

Like mmdet's ``DeformableDETR.forward_transformer``, each stage returns a dict whose keys are the
keyword arguments of the next one:

* ``extract_feat``: clips -> backbone and neck features, padding masks, positions (text-independent);
  ``extract_text_feat``: expressions -> word features, sentence feature;
* ``forward_transformer`` (text-dependent) chains ``fuse`` (vision <-> language) -> ``pre_transformer``
  (flattened levels) -> ``forward_encoder`` (memory) -> ``pre_decoder`` (learned queries, reference
  points) -> ``forward_decoder`` (frame queries of every decoder layer) -> ``forward_cluster`` (VOC:
  video queries) and ``forward_mask_feats`` (spatial decoder), and returns ``head_inputs_dict``;
* ``bbox_head.loss(**head_inputs_dict, ...)`` / ``bbox_head.predict(...)`` (per-sample ``InstanceData``).

Words: a *level* is a feature-pyramid level (``num_feature_levels``), a *layer* a decoder layer
(``test_cfg.output_layer``). A batch is B (clip, expression) pairs of T frames, run batch-major
``(b t)``. Video-level inference (clips of ``clip_len`` frames, one backbone pass for the expressions
of a clip, merging) is ``soc_mm.models.inference.VideoInference``, which ``predict`` calls; the
metainfo SOC reads is parsed in ``soc_mm.structures.batch_metainfo``.
"""
import copy
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

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
from soc_mm.structures.batch_metainfo import (check_batch, get_frame_index, get_img_shapes, get_texts,
                                              img_shapes_tensor, padding_masks)
from ..inference.test_options import RVOSTestOptions
from ..inference.video_inference import VideoInference
from ..layers.fast_kernels import enable_fast_kernels
from ..layers.positional_encoding import SinePositionalEncoding1D
from ..layers.vision_language_fusion import VisionLanguageFusion

ForwardResults = Union[Dict[str, Tensor], list]


@MODELS.register_module()
class SOC(BaseModel):
    """SOC (NeurIPS 2023) referring video object segmentation model.

    Video-Swin backbone (4 stages) -> ChannelMapper neck (stages 2-4 + one stride-64 level) ->
    vision/language fusion (``vlf`` on every level; ``lvf`` gives the fused sentence feature) ->
    deformable encoder/decoder with learned queries shared by all frames -> VOC (frame queries of a
    video + sentence -> video queries) -> head on ``frame queries + video queries`` (classes, boxes,
    dynamic masks on the spatial decoder's mask features).

    Args:
        backbone, text_encoder, neck, voc, spatial_decoder, bbox_head (dict): configs of the
            sub-modules (``VideoSwinTransformer``, ``RoBERTaTextEncoder``, ``mmdet.ChannelMapper``,
            ``VOC``, ``SOCSpatialDecoder``, ``SOCHead``).
        encoder, decoder (dict): configs of mmdet's ``DeformableDetrTransformerEncoder`` / ``Decoder``
            (``num_layers``, ``layer_cfg``; decoder ``return_intermediate=True``).
        positional_encoding (dict): mmdet ``SinePositionalEncoding`` args for the feature levels
            (SOC: ``num_feats=C/2, normalize=True, offset=-0.5``).
        text_positional_encoding (dict): ``SinePositionalEncoding1D`` args (SOC: ``num_feats=C``).
        fusion (dict): ``VisionLanguageFusion`` args for ``vlf`` and ``lvf``.
        num_queries (int): object queries per frame.
        num_feature_levels (int): feature levels of the deformable transformer.
        with_box_refine (bool): iterative box refinement in the decoder with the head's
            regression branches.
        train_cfg (dict): passed to the head.
        test_cfg (dict): the test options, parsed once into ``test_options``
            (``soc_mm.models.inference.RVOSTestOptions``: its keys, defaults and checks), which the
            head and ``VideoInference`` read: e.g. ``output_layer`` ('first' | 'last' | index,
            default 'first'): the decoder layer whose heads give the eval outputs (official eval:
            layer 0, with the last layer's VOC output); ``clip_len``, ``expressions_per_batch``,
            ``share_clips``, ``bf16``: how videos are run (``VideoInference``).
        data_preprocessor (dict): ``RVOSDataPreprocessor`` config.
        fast_kernels (bool): build with the fused CPU kernels of
            ``soc_mm.models.layers.fast_kernels`` (channels-last Video-Swin, fused window attention,
            gathered deformable attention, batched dynamic mask head): the reference kernels' maths
            to float rounding, in training and inference. False: the reference (official) kernels.
    """

    def __init__(self, backbone: dict, text_encoder: dict, neck: dict, encoder: dict, decoder: dict, voc: dict,
                 spatial_decoder: dict, bbox_head: dict, positional_encoding: Optional[dict] = None,
                 text_positional_encoding: Optional[dict] = None, fusion: Optional[dict] = None,
                 num_queries: int = 5, num_feature_levels: int = 4, with_box_refine: bool = True,
                 train_cfg: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, fast_kernels: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.train_cfg = train_cfg
        self._test_options = RVOSTestOptions.from_cfg(test_cfg, num_layers=decoder['num_layers'])
        self.num_queries = num_queries
        self.num_feature_levels = num_feature_levels
        self.with_box_refine = with_box_refine
        # the neck maps the last 3 backbone stages (strides 8/16/32); further levels are extra convs
        self.num_backbone_levels = 3

        self.backbone = MODELS.build(backbone)
        self.text_encoder = MODELS.build(text_encoder)
        self.neck = MODELS.build(neck)
        self.encoder = DeformableDetrTransformerEncoder(**copy.deepcopy(encoder))
        decoder = copy.deepcopy(decoder)
        decoder.setdefault('post_norm_cfg', None)  # mmdet's Deformable decoder has no final norm
        self.decoder = DeformableDetrTransformerDecoder(**decoder)
        self.embed_dims = C = self.encoder.embed_dims
        self.positional_encoding = SinePositionalEncoding(
            **(positional_encoding or dict(num_feats=C // 2, normalize=True, offset=-0.5)))
        if self.positional_encoding.num_feats * 2 != C:
            raise ValueError(f'positional_encoding.num_feats must be embed_dims/2 = {C // 2}')
        self.text_positional_encoding = SinePositionalEncoding1D(**(text_positional_encoding or dict(num_feats=C)))
        fusion = fusion or dict(embed_dims=C, num_heads=8)
        self.vlf = VisionLanguageFusion(**fusion)
        self.lvf = VisionLanguageFusion(**fusion)
        self.level_embed = nn.Parameter(torch.zeros(num_feature_levels, C))  # normal_ in init_weights
        self.reference_points_fc = nn.Linear(C, 2)
        self.query_embedding = nn.Embedding(num_queries, C)
        self.voc = MODELS.build(voc)
        self.spatial_decoder = MODELS.build(spatial_decoder)
        bbox_head = copy.deepcopy(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=self._test_options)
        self.bbox_head = MODELS.build(bbox_head)
        if with_box_refine and len(self.bbox_head.reg_branches) != self.decoder.num_layers:
            raise ValueError(f'with_box_refine needs one head regression branch per decoder layer: '
                             f'{len(self.bbox_head.reg_branches)} branches, {self.decoder.num_layers} layers')
        if self.text_encoder.embed_dims != C:
            raise ValueError(f'text_encoder.embed_dims ({self.text_encoder.embed_dims}) must equal '
                             f'the transformer embed_dims ({C})')
        if fast_kernels:
            enable_fast_kernels(self)

    @property
    def test_options(self) -> RVOSTestOptions:
        """The parsed ``test_cfg`` (shared with the head). Change it by setting a new object, e.g.
        ``model.test_options = model.test_options.replace(clip_len=8)``."""
        return self._test_options

    @test_options.setter
    def test_options(self, options: RVOSTestOptions) -> None:
        if not isinstance(options, RVOSTestOptions):
            raise TypeError(f'SOC.test_options must be an RVOSTestOptions (RVOSTestOptions.from_cfg(dict)), '
                            f'got {type(options).__name__}')
        options.layer_index(self.decoder.num_layers)
        self.bbox_head.test_options = options
        self._test_options = options

    @property
    def test_cfg(self) -> Mapping:
        """Read-only ``test_cfg`` view of ``test_options`` (every option, defaults included)."""
        return self._test_options.as_mapping()

    @property
    def output_layer(self) -> int:
        """Index of the decoder layer whose heads give the outputs (``test_cfg.output_layer``)."""
        return self._test_options.layer_index(self.decoder.num_layers)

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

    # ------------------------------------------------------------------ text-independent
    def extract_feat(self, inputs: Tensor, batch_data_samples: Sequence) -> Dict[str, List[Tensor]]:
        """Backbone (frames kept by ``valid_frame_idx``), neck, padding masks, positional encodings.

        Args:
            inputs (Tensor): normalised, padded clips [B, T_in, 3, Hp, Wp].
            batch_data_samples (list[RVOSDataSample]): metainfo ``img_shape``, optional
                ``valid_frame_idx``.

        Returns:
            dict (T = frames kept): ``backbone_feats`` list of 4 [(B*T), C_i, h_i, w_i] (strides 4-32),
            ``mlvl_feats`` / ``mlvl_pos_embeds`` lists of ``num_feature_levels`` [(B*T), C, h_l, w_l]
            (strides 8-64), ``mlvl_masks`` list [(B*T), h_l, w_l] bool (True on padding).
        """
        check_batch(inputs, batch_data_samples)
        B, T_in = inputs.shape[:2]
        pad_hw = tuple(inputs.shape[-2:])
        frame_index = get_frame_index(batch_data_samples, T_in, inputs.device)
        T = T_in if frame_index is None else frame_index.numel() // B
        img_shapes = get_img_shapes(batch_data_samples, pad_hw)
        backbone_feats = self.backbone(inputs)
        if frame_index is not None:
            backbone_feats = [f.index_select(0, frame_index) for f in backbone_feats]
        masks = padding_masks(img_shapes, pad_hw, T, inputs.device)
        mlvl_feats = self.neck(tuple(backbone_feats[-self.num_backbone_levels:]))
        if len(mlvl_feats) != self.num_feature_levels:
            raise ValueError(f'the neck gives {len(mlvl_feats)} levels, num_feature_levels is '
                             f'{self.num_feature_levels}')
        mlvl_masks = [F.interpolate(masks[None].float(), size=f.shape[-2:]).to(torch.bool)[0] for f in mlvl_feats]
        return dict(backbone_feats=list(backbone_feats), mlvl_feats=list(mlvl_feats), mlvl_masks=mlvl_masks,
                    mlvl_pos_embeds=[self.positional_encoding(m) for m in mlvl_masks])

    def extract_text_feat(self, texts: Sequence[str]) -> Dict[str, Tensor]:
        """-> ``word_feats`` [B, S, C], ``word_padding_mask`` [B, S] (True on padding),
        ``sentence_feat`` [B, C] (projected pooler output; drives VOC)."""
        word_feats, word_padding_mask, sentence_feat = self.text_encoder(texts)
        return dict(word_feats=word_feats, word_padding_mask=word_padding_mask, sentence_feat=sentence_feat)

    # ------------------------------------------------------------------ text-dependent
    def forward_transformer(self, backbone_feats: List[Tensor], mlvl_feats: List[Tensor],
                            mlvl_masks: List[Tensor], mlvl_pos_embeds: List[Tensor], word_feats: Tensor,
                            word_padding_mask: Tensor, sentence_feat: Tensor) -> Dict:
        """Everything between the features (``extract_feat`` / ``extract_text_feat``, one pair per
        batch entry) and the head.

        Returns ``head_inputs_dict`` (L decoder layers, L' = layers clustered by VOC: L in
        training, the last one in eval): ``hidden_states`` [L, B, T, nq, C] (frame queries + video
        queries), ``references`` list of L+1 [B, T, nq, 2|4] (initial, then refined by each layer),
        ``mask_feats`` [B, T, D, h4, w4], ``video_queries`` [L', B, nq, C],
        ``fused_sentence_feat`` [B, C] (mean of the fused words; contrastive loss).
        """
        fusion_outputs_dict = self.fuse(mlvl_feats, mlvl_masks, mlvl_pos_embeds, word_feats, word_padding_mask)
        encoder_inputs_dict, decoder_inputs_dict = self.pre_transformer(
            fusion_outputs_dict['mlvl_feats'], mlvl_masks, mlvl_pos_embeds)
        encoder_outputs_dict = self.forward_encoder(**encoder_inputs_dict)
        decoder_inputs_dict.update(self.pre_decoder(**encoder_outputs_dict))
        decoder_outputs_dict = self.forward_decoder(**decoder_inputs_dict, num_videos=word_feats.shape[0])
        head_inputs_dict = self.forward_cluster(**decoder_outputs_dict, sentence_feat=sentence_feat)
        head_inputs_dict['mask_feats'] = self.forward_mask_feats(
            encoder_outputs_dict['memory'], encoder_outputs_dict['spatial_shapes'], backbone_feats[0],
            num_videos=word_feats.shape[0])
        head_inputs_dict['fused_sentence_feat'] = fusion_outputs_dict['fused_sentence_feat']
        return head_inputs_dict

    def fuse(self, mlvl_feats: Sequence[Tensor], mlvl_masks: Sequence[Tensor], mlvl_pos_embeds: Sequence[Tensor],
             word_feats: Tensor, word_padding_mask: Tensor) -> Dict[str, Union[List[Tensor], Tensor]]:
        """Vision-language fusion of the feature levels.

        Every level: the visual tokens of a video (``t h w``) attend to the words (``vlf``). The
        words attend to the visual tokens (``lvf``, keys with the level's 2-D position) of the last
        backbone-derived level (stride 32); SOC computes ``lvf`` on the strides 8/16 too but never
        uses those results, so they are skipped.

        Returns ``mlvl_feats`` (fused) list [(B*T), C, h, w] and ``fused_sentence_feat`` [B, C]
        (mean of the ``lvf``-fused words over non-pad tokens).
        """
        B = word_feats.shape[0]
        text_pos = self.text_positional_encoding(word_padding_mask)
        lvf_level = self.num_backbone_levels - 1
        fused, fused_words = [], None
        for lvl, feat in enumerate(mlvl_feats):
            h, w = feat.shape[-2:]
            tokens = rearrange(feat, '(b t) c h w -> b (t h w) c', b=B)
            if lvl == lvf_level:
                fused_words = self.lvf(
                    word_feats, tokens,
                    key_pos=rearrange(mlvl_pos_embeds[lvl], '(b t) c h w -> b (t h w) c', b=B),
                    key_padding_mask=rearrange(mlvl_masks[lvl], '(b t) h w -> b (t h w)', b=B))
            tokens = self.vlf(tokens, word_feats, key_pos=text_pos, key_padding_mask=word_padding_mask)
            fused.append(rearrange(tokens, 'b (t h w) c -> (b t) c h w', h=h, w=w))
        valid = (~word_padding_mask).to(fused_words.dtype)[..., None]
        fused_sentence_feat = (fused_words * valid).sum(1) / valid.sum(1).clamp(min=1)
        return dict(mlvl_feats=fused, fused_sentence_feat=fused_sentence_feat)

    def pre_transformer(self, mlvl_feats: Sequence[Tensor], mlvl_masks: Sequence[Tensor],
                        mlvl_pos_embeds: Sequence[Tensor]) -> Tuple[Dict, Dict]:
        """Flatten the levels (as mmdet's ``DeformableDETR.pre_transformer``, masks given).

        Returns ``encoder_inputs_dict`` (``feat``, ``feat_mask``, ``feat_pos`` [(B*T), S, C|-],
        ``spatial_shapes`` [levels, 2], ``level_start_index``, ``valid_ratios`` [(B*T), levels, 2])
        and ``decoder_inputs_dict`` (``memory_mask``, ``spatial_shapes``, ``level_start_index``,
        ``valid_ratios``).
        """
        feat_flatten, pos_flatten, mask_flatten, spatial_shapes = [], [], [], []
        for lvl, (feat, mask, pos) in enumerate(zip(mlvl_feats, mlvl_masks, mlvl_pos_embeds)):
            spatial_shapes.append(feat.shape[-2:])
            feat_flatten.append(feat.flatten(2).transpose(1, 2))
            pos_flatten.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
            mask_flatten.append(mask.flatten(1))
        feat_flatten = torch.cat(feat_flatten, 1)
        spatial_shapes = torch.as_tensor(spatial_shapes, dtype=torch.long, device=feat_flatten.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([DeformableDETR.get_valid_ratio(m) for m in mlvl_masks], 1)
        mask_flatten = torch.cat(mask_flatten, 1)
        encoder_inputs_dict = dict(feat=feat_flatten, feat_mask=mask_flatten, feat_pos=torch.cat(pos_flatten, 1),
                                   spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                                   valid_ratios=valid_ratios)
        decoder_inputs_dict = dict(memory_mask=mask_flatten, spatial_shapes=spatial_shapes,
                                   level_start_index=level_start_index, valid_ratios=valid_ratios)
        return encoder_inputs_dict, decoder_inputs_dict

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor, feat_pos: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor) -> Dict[str, Tensor]:
        """-> ``memory`` [(B*T), S, C], ``memory_mask`` [(B*T), S], ``spatial_shapes``."""
        memory = self.encoder(query=feat, query_pos=feat_pos, key_padding_mask=feat_mask,
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                              valid_ratios=valid_ratios)
        return dict(memory=memory, memory_mask=feat_mask, spatial_shapes=spatial_shapes)

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor, spatial_shapes: Tensor) -> Dict[str, Tensor]:
        """Learned queries shared by every frame: zero content, ``query_embedding`` as position,
        initial reference points from a Linear.

        Returns ``query``, ``query_pos`` [(B*T), nq, C], ``memory`` and ``reference_points``
        [(B*T), nq, 2].
        """
        query_pos = self.query_embedding.weight[None].expand(memory.shape[0], -1, -1)
        return dict(query=torch.zeros_like(query_pos), query_pos=query_pos, memory=memory,
                    reference_points=self.reference_points_fc(query_pos).sigmoid())

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Tensor,
                        reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                        valid_ratios: Tensor, num_videos: int = 1) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """-> ``hidden_states`` [L, (B*T), nq, C] (frame queries of every decoder layer) and
        ``references`` list of L+1 [(B*T), nq, 2|4] (initial, then refined by each layer).

        Every frame is decoded on its own from the same learned queries; ``num_videos`` (B) is not read
        here (variants that decode the frames of a video in order, ``QueryPropagationSOC``, need it)."""
        reg_branches = self.bbox_head.reg_branches if self.with_box_refine else None
        hidden_states, inter_references = self.decoder(
            query=query, query_pos=query_pos, value=memory, key_padding_mask=memory_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios, reg_branches=reg_branches)
        return dict(hidden_states=hidden_states, references=[reference_points, *inter_references])

    def forward_cluster(self, hidden_states: Tensor, references: List[Tensor],
                        sentence_feat: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """VOC: the frame queries of each video and its sentence feature [B, C] -> video queries.

        Clusters every decoder layer in training, the last one in eval (as SOC), and adds the video
        queries to the frame queries of every layer (eval: the last layer's to all).

        Returns ``hidden_states`` [L, B, T, nq, C], ``references`` list of L+1 [B, T, nq, 2|4],
        ``video_queries`` [L', B, nq, C].
        """
        B = sentence_feat.shape[0]
        frame_queries = rearrange(hidden_states, 'l (b t) q c -> l b t q c', b=B)
        clustered = self.group_frames_by_video(frame_queries if self.training else frame_queries[-1:])
        L, _, T, nq, C = clustered.shape
        boxes = None
        if self.voc.needs_frame_boxes:
            # the boxes of each clustered layer's frame queries: that layer's refined references
            boxes = torch.stack([rearrange(r, '(b t) q n -> b t q n', b=B) for r in references[1:]])
            boxes = self.group_frames_by_video(boxes if self.training else boxes[-1:])
            boxes = boxes.reshape(L * B, T, nq, -1)
        video_queries = self.voc(clustered.reshape(L * B, T, nq, C), sentence_feat.repeat(L, 1),
                                 boxes).view(L, B, -1, C)
        return dict(hidden_states=frame_queries + video_queries[:, :, None],
                    references=[rearrange(r, '(b t) q n -> b t q n', b=B) for r in references],
                    video_queries=video_queries)

    def group_frames_by_video(self, frames: Tensor) -> Tensor:
        """The per-video frame sequences VOC clusters: [L, B, T, nq, n] -> [L, B, T, nq, n] (SOC: as given)."""
        return frames

    def forward_mask_feats(self, memory: Tensor, spatial_shapes: Tensor, stride4_feats: Tensor,
                           num_videos: int) -> Tensor:
        """Spatial decoder (FPN) on the encoder memory of the levels of strides 8-32 and the
        stride-4 backbone features [(B*T), C_0, h4, w4] -> mask features [B, T, D, h4, w4]."""
        maps, start = [], 0
        for h, w in spatial_shapes[:-1].tolist():
            maps.append(rearrange(memory[:, start:start + h * w], 'n (h w) c -> n c h w', h=h, w=w))
            start += h * w
        mask_feats = self.spatial_decoder(maps[-1], maps[-2::-1] + [stride4_feats])
        return rearrange(mask_feats, '(b t) d h w -> b t d h w', b=num_videos)

    # ------------------------------------------------------------------ modes
    def forward_head_inputs(self, inputs: Tensor, data_samples: Sequence) -> Dict:
        """``head_inputs_dict`` of B clips [B, T, 3, Hp, Wp], one expression each (all stages)."""
        check_batch(inputs, data_samples)
        text_feats = self.extract_text_feat(get_texts(data_samples))
        return self.forward_transformer(**self.extract_feat(inputs, data_samples), **text_feats)

    def loss(self, inputs: Tensor, data_samples: Sequence) -> Dict[str, Tensor]:
        """Losses of every decoder layer (VOC on every layer)."""
        return self.bbox_head.loss(**self.forward_head_inputs(inputs, data_samples), batch_data_samples=data_samples)

    def predict(self, inputs: Tensor, data_samples: Sequence, rescale: bool = True) -> list:
        """Masks and scores of the ``test_cfg.output_layer`` heads, added to the data samples.

        Video-level inference (``VideoInference`` with ``test_options``): samples showing the same clip
        (metainfo clip key) run the text-independent stages once; clips longer than
        ``test_cfg.clip_len`` are processed as consecutive clips and merged.
        """
        results = VideoInference(self).predict_batch(inputs, data_samples, rescale=rescale)
        return self.add_pred_to_datasample(data_samples, results)

    @staticmethod
    def add_pred_to_datasample(data_samples: Sequence, results: Sequence[InstanceData]) -> list:
        """Head results (one ``InstanceData`` over the T frames per sample) -> ``pred_masks`` bool
        [T, H0, W0], ``pred_scores`` [T]; when the head kept every query, ``pred_instances``
        (``masks`` [nq, T, H0, W0], ``scores`` [nq, T]); with ``object_selection='threshold'``,
        ``pred_objects``: the k selected objects whose union is ``pred_masks`` (``masks`` [k, T, H0, W0],
        ``scores`` [k, T], ``query_index`` [k, T]: per clip; -1 where a merged clip selected fewer objects)."""
        for sample, result in zip(data_samples, results):
            sample.pred_masks = result.masks
            sample.pred_scores = result.scores
            if 'query_masks' in result:
                sample.pred_instances = InstanceData(masks=result.query_masks.transpose(0, 1),
                                                     scores=result.query_scores.transpose(0, 1))
            if 'object_masks' in result:
                sample.pred_objects = InstanceData(masks=result.object_masks.transpose(0, 1),
                                                   scores=result.object_scores.transpose(0, 1),
                                                   query_index=result.object_query_index.transpose(0, 1))
        return list(data_samples)

    def _forward(self, inputs: Tensor, data_samples: Sequence) -> Dict[str, Tensor]:
        """Raw outputs: ``head_inputs_dict`` plus the heads of every decoder layer (``cls``
        [L, B, T, nq, K], ``boxes`` [L, B, T, nq, 4], ``masks`` [L, B, T, nq, h, w])."""
        head_inputs_dict = self.forward_head_inputs(inputs, data_samples)
        img_sizes = img_shapes_tensor(data_samples, inputs.device)
        cls, boxes, masks = self.bbox_head(head_inputs_dict['hidden_states'], head_inputs_dict['references'],
                                           head_inputs_dict['mask_feats'], img_sizes)
        return dict(head_inputs_dict, cls=cls, boxes=boxes, masks=masks)

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
