"""SOC++ (the TPAMI extension of SOC by its authors): proxy fusion, scored clustering, random walk, query fusion."""
from typing import Dict, List, Optional, Sequence, Union

from einops import rearrange
from torch import Tensor, nn

from soc_mm.registry import MODELS
from ..layers.random_walk import random_walk_refine
from ..layers.vision_language_fusion import VisionLanguageFusion
from .soc import SOC


@MODELS.register_module()
class SOCPlusPlus(SOC):
    """SOC++: SOC with proxy-assisted fusion, a frame-scored cluster decoder and query fusion.

    What changes from ``SOC`` (backbone, deformable transformer, heads, matcher and losses are SOC's):

    * **Proxy fusion** (``fuse``): ``num_proxy_queries`` learned proxies [P, C] gather each of the
      first three fused visual levels (``proxy_fusion``, SOC's gated attention ``p * MHA(p, v + v, v)``:
      the key's position is the feature itself) and accumulate (``p += ...``); the words attend to the
      proxies once, at the third level (``lvf``), and their masked mean is the sentence feature
      that drives the cluster decoder and the contrastive loss (RoBERTa's pooler is frozen and unused).
    * **Query content** (``pre_decoder``): every frame's decoder queries start from the mean of the
      video's proxies instead of zeros.
    * **Cluster decoder** (``voc``, ``FrameScoredVOC``): runs on every decoder layer in training and
      in eval.
    * **Random walk** (``random_walk_refine``, no parameters) refines each layer's video queries by its
      frame queries; **query fusion** (``query_fusion``, ``QueryFusion``): the frame queries attend to
      the refined video queries, and the heads read the result (SOC: frame + video query).
    * Evaluation reads the **last** decoder layer (``test_cfg.output_layer='last'`` by default; SOC: 'first').

    SOC++ runs its deformable transformer in chunks of 64 frames for long MeViS videos (its chunking
    splits the queries per video and the features per batch, so it is right for batch 1 only); every
    frame is decoded on its own, so one pass over all frames gives the same numbers for any batch, and
    ``VideoInference`` (``test_cfg.clip_len``) bounds the memory of long videos.

    Args:
        num_proxy_queries (int): P (SOC++: ``num_proxy_query``, 20).
        proxy_fusion (dict, optional): ``VisionLanguageFusion`` args of the proxies' attention
            (default: as ``fusion``).
        query_fusion (dict, optional): ``QueryFusion`` args (``embed_dims`` filled in; SOC++: 8 heads,
            dropout 0.1).
        random_walk (dict, optional): ``random_walk_refine`` args (SOC++: ``weight=0.5, temperature=5``).
        voc (dict): a ``FrameScoredVOC`` config.
        Others: as ``SOC``.
    """

    def __init__(self, *args, num_proxy_queries: int = 20, proxy_fusion: Optional[dict] = None,
                 query_fusion: Optional[dict] = None, random_walk: Optional[dict] = None,
                 test_cfg: Optional[dict] = None, **kwargs) -> None:
        test_cfg = dict(test_cfg or {})
        test_cfg.setdefault('output_layer', 'last')
        super().__init__(*args, test_cfg=test_cfg, **kwargs)
        if not hasattr(self.voc, 'frame_scores'):
            raise TypeError(f'SOCPlusPlus: voc must be a FrameScoredVOC (SOC++\'s cluster decoder), got '
                            f'{type(self.voc).__name__}')
        if num_proxy_queries < 1:
            raise ValueError(f'SOCPlusPlus: num_proxy_queries must be >= 1, got {num_proxy_queries}')
        C = self.embed_dims
        self.num_proxy_queries = num_proxy_queries
        self.proxy_queries = nn.Embedding(num_proxy_queries, C)
        self.proxy_fusion = VisionLanguageFusion(**(proxy_fusion or dict(embed_dims=C, num_heads=8)))
        query_fusion = dict(query_fusion or {})
        query_fusion.setdefault('embed_dims', C)
        self.query_fusion = MODELS.build(dict(type='QueryFusion', **query_fusion))
        self.random_walk = dict(weight=0.5, temperature=5.0, **(random_walk or {}))
        # SOC++ freezes RoBERTa's pooler (its output is not used)
        pooler = getattr(getattr(self.text_encoder, 'model', None), 'pooler', None)
        if pooler is not None:
            pooler.requires_grad_(False)

    # ------------------------------------------------------------------ text-dependent
    def forward_transformer(self, backbone_feats: List[Tensor], mlvl_feats: List[Tensor],
                            mlvl_masks: List[Tensor], mlvl_pos_embeds: List[Tensor], word_feats: Tensor,
                            word_padding_mask: Tensor, sentence_feat: Tensor) -> Dict:
        """As ``SOC.forward_transformer``; the proxies of ``fuse`` reach ``pre_decoder`` and the fused
        sentence feature replaces ``sentence_feat`` (RoBERTa's pooler, unused) in the cluster decoder."""
        B = word_feats.shape[0]
        fusion_outputs_dict = self.fuse(mlvl_feats, mlvl_masks, mlvl_pos_embeds, word_feats, word_padding_mask)
        encoder_inputs_dict, decoder_inputs_dict = self.pre_transformer(
            fusion_outputs_dict['mlvl_feats'], mlvl_masks, mlvl_pos_embeds)
        encoder_outputs_dict = self.forward_encoder(**encoder_inputs_dict)
        decoder_inputs_dict.update(self.pre_decoder(**encoder_outputs_dict, proxies=fusion_outputs_dict['proxies']))
        decoder_outputs_dict = self.forward_decoder(**decoder_inputs_dict, num_videos=B)
        head_inputs_dict = self.forward_cluster(**decoder_outputs_dict,
                                                sentence_feat=fusion_outputs_dict['fused_sentence_feat'])
        head_inputs_dict['mask_feats'] = self.forward_mask_feats(
            encoder_outputs_dict['memory'], encoder_outputs_dict['spatial_shapes'], backbone_feats[0], num_videos=B)
        head_inputs_dict['fused_sentence_feat'] = fusion_outputs_dict['fused_sentence_feat']
        return head_inputs_dict

    def fuse(self, mlvl_feats: Sequence[Tensor], mlvl_masks: Sequence[Tensor], mlvl_pos_embeds: Sequence[Tensor],
             word_feats: Tensor, word_padding_mask: Tensor) -> Dict[str, Union[List[Tensor], Tensor]]:
        """Proxy-assisted fusion (class docstring).

        Returns ``mlvl_feats`` (every level fused with the words, as SOC) list [(B*T), C, h, w],
        ``proxies`` [B, P, C] (after the first three levels) and ``fused_sentence_feat`` [B, C] (mean of
        the words updated from the proxies, over non-pad tokens).
        """
        B = word_feats.shape[0]
        text_pos = self.text_positional_encoding(word_padding_mask)
        lvf_level = self.num_backbone_levels - 1  # SOC++ hard-codes the third level
        proxies = self.proxy_queries.weight[None].expand(B, -1, -1)
        fused, fused_words = [], None
        for lvl, feat in enumerate(mlvl_feats):
            h, w = feat.shape[-2:]
            tokens = rearrange(feat, '(b t) c h w -> b (t h w) c', b=B)
            tokens = self.vlf(tokens, word_feats, key_pos=text_pos, key_padding_mask=word_padding_mask)
            if lvl < self.num_backbone_levels:
                proxies = proxies + self.proxy_fusion(
                    proxies, tokens, key_pos=tokens,
                    key_padding_mask=rearrange(mlvl_masks[lvl], '(b t) h w -> b (t h w)', b=B))
            if lvl == lvf_level:
                fused_words = self.lvf(word_feats, proxies)
            fused.append(rearrange(tokens, 'b (t h w) c -> (b t) c h w', h=h, w=w))
        valid = (~word_padding_mask).to(fused_words.dtype)[..., None]
        fused_sentence_feat = (fused_words * valid).sum(1) / valid.sum(1).clamp(min=1)
        return dict(mlvl_feats=fused, proxies=proxies, fused_sentence_feat=fused_sentence_feat)

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor, spatial_shapes: Tensor,
                    proxies: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """As ``SOC.pre_decoder``, with the query content = the mean of the video's proxies
        (``proxies`` [B, P, C]) on each of its frames: ``query`` [(B*T), nq, C]."""
        decoder_inputs = super().pre_decoder(memory, memory_mask, spatial_shapes)
        if proxies is None:
            raise ValueError('SOCPlusPlus.pre_decoder needs the proxies of fuse()')
        frames = memory.shape[0] // proxies.shape[0]
        content = proxies.mean(1).repeat_interleave(frames, dim=0)[:, None]  # [(B*T), 1, C]
        decoder_inputs['query'] = decoder_inputs['query'] + content
        return decoder_inputs

    def forward_cluster(self, hidden_states: Tensor, references: List[Tensor],
                        sentence_feat: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """Cluster decoder on every decoder layer, random walk, query fusion.

        Args:
            hidden_states (Tensor): frame queries [L, (B*T), nq, C].
            references (list[Tensor]): L+1 of [(B*T), nq, 2|4].
            sentence_feat (Tensor): the fused sentence feature [B, C].

        Returns ``hidden_states`` [L, B, T, nq, C] (the fused frame queries the heads read),
        ``references`` list of L+1 [B, T, nq, 2|4] and ``video_queries`` [L, B, n, C] (the cluster
        decoder's output, before the random walk: the contrastive loss reads it, as SOC++).
        """
        B = sentence_feat.shape[0]
        frame_queries = rearrange(hidden_states, 'l (b t) q c -> l b t q c', b=B)
        L, _, T, nq, C = frame_queries.shape
        clustered = self.group_frames_by_video(frame_queries)
        video_queries = self.voc(clustered.reshape(L * B, T, nq, C), sentence_feat.repeat(L, 1),
                                 num_layers=L).view(L, B, -1, C)
        frames = frame_queries.reshape(L * B, T * nq, C)
        refined = random_walk_refine(video_queries.flatten(0, 1), frames, **self.random_walk)
        fused = self.query_fusion(frames, refined).view(L, B, T, nq, C)
        return dict(hidden_states=fused, references=[rearrange(r, '(b t) q n -> b t q n', b=B) for r in references],
                    video_queries=video_queries)
