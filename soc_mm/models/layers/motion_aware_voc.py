"""MotionAwareVOC: SOC's VOC with the motion options of the MeViS experiments (not SOC's)."""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.layers.transformer.utils import coordinate_to_encoding
from torch import Tensor, nn

from soc_mm.registry import MODELS
from .positional_encoding import SinePositionalEncoding1D
from .voc import VOC


@MODELS.register_module()
class MotionAwareVOC(VOC):
    """VOC that can see where frame queries are, how they move, and match their motion with the words.

    SOC's VOC clusters a clip's frame queries as an unordered set of hidden states, which hold box
    *deltas* (not positions) with a box-refining decoder: it cannot tell "moves left" from "moves right".
    Each option below is off by default (all off = ``VOC``); only ``sentence_product`` and
    ``slot_motion_product`` have weights (under ``sentence_product.``), so a ``VOC`` checkpoint loads
    strictly without them and with ``strict=False`` with them (predicting as before: the product starts
    at zero).

    Args:
        embed_dims, num_heads, num_queries, num_frame_queries, num_encoder_layers, num_decoder_layers,
            feedforward_channels, window_size, dropout: as ``VOC``.
        temporal_pos_encoding (dict, optional): ``SinePositionalEncoding1D`` args of a code of each frame's
            position in the clip (normalised to ``(0, 2*pi]``), added to the frame-query tokens' positions
            in the encoder's self-attention and in the decoder's keys. None: no time code.
        box_encoding (bool): add a sine code of each frame query's box (the decoder layer's refined
            reference ``(cx, cy, w, h)``; mmdet's ``coordinate_to_encoding``) to its token.
        motion_encoding (bool): add :meth:`motion_code` (the box centre's displacement since the clip's
            first and since the previous frame) to each token. Meant with ``QueryPropagationSOC``, where a
            query slot follows one object through the clip, so that the displacement is the object's.
        per_slot_clustering (bool): video query i attends to frame-query slot i only (in every frame), so
            that its score judges that slot's object; needs ``num_queries == num_frame_queries``.
        sentence_product (bool): add a low-rank bilinear term of each video query and the sentence after
            the decoder (MLB pooling, Kim et al. 2017): ``q += W_o((W_q q) * (W_s LN(s)))``. The class
            branch is linear in q, so matching a slot's motion with the expression's motion word would
            otherwise need the FFNs to learn a product of two small signals. ``W_o`` starts at zero.
            3 CxC weights.
        slot_motion_product (bool | str): the product's query side also reads the slot's motion:
            ``W_q q + W_m mean_t(motion code of slot i)`` (True; 1 CxC weight), or ``+ MLP(slot_trajectory)``
            (``'trajectory'``: the slot's centre at ``TRAJECTORY_POINTS`` evenly spaced times, which tells
            "stays still", "stops moving" and "moves left" apart where the time mean blurs them; 12xC + CxC
            weights). Needs ``sentence_product``, ``motion_encoding`` and ``per_slot_clustering`` (video
            query i is slot i).
    """

    #: the displacement since the previous frame is scaled by this before its code (a few % of
    #: the frame per step otherwise use a sliver of the code's range)
    STEP_SCALE = 4.0

    #: times (evenly spaced over the clip, first and last frame included) of ``slot_trajectory``
    TRAJECTORY_POINTS = 4
    #: its features: (dx, dy, length) of the P-1 segments and of the whole displacement
    TRAJECTORY_FEATURES = 3 * TRAJECTORY_POINTS

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_queries: int = 20,
                 num_frame_queries: int = 20, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                 feedforward_channels: int = 2048, window_size: int = 0, dropout: float = 0.1,
                 temporal_pos_encoding: Optional[dict] = None, box_encoding: bool = False,
                 motion_encoding: bool = False, per_slot_clustering: bool = False, sentence_product: bool = False,
                 slot_motion_product: Union[bool, str] = False, init_cfg=None):
        name = type(self).__name__
        if per_slot_clustering and num_queries != num_frame_queries:
            raise ValueError(f'{name}: per_slot_clustering needs num_queries == num_frame_queries, got '
                             f'{num_queries} and {num_frame_queries}')
        if motion_encoding and embed_dims % 4:
            raise ValueError(f'{name}: motion_encoding needs embed_dims divisible by 4, got {embed_dims}')
        if slot_motion_product not in (False, True, 'trajectory'):
            raise ValueError(f"{name}: slot_motion_product must be False, True or 'trajectory', got "
                             f'{slot_motion_product!r}')
        if slot_motion_product and not (sentence_product and motion_encoding and per_slot_clustering):
            raise ValueError(f'{name}: slot_motion_product needs sentence_product, motion_encoding and '
                             f'per_slot_clustering, got {sentence_product}, {motion_encoding} and '
                             f'{per_slot_clustering}')
        if box_encoding and embed_dims % 4:
            raise ValueError(f'{name}: box_encoding needs embed_dims divisible by 4 (one sine code per box value), '
                             f'got {embed_dims}')
        super().__init__(embed_dims=embed_dims, num_heads=num_heads, num_queries=num_queries,
                         num_frame_queries=num_frame_queries, num_encoder_layers=num_encoder_layers,
                         num_decoder_layers=num_decoder_layers, feedforward_channels=feedforward_channels,
                         window_size=window_size, dropout=dropout, init_cfg=init_cfg)
        self.box_encoding = box_encoding
        self.motion_encoding = motion_encoding
        self.per_slot_clustering = per_slot_clustering
        self.sentence_product = None
        if sentence_product:
            self.sentence_product = nn.ModuleDict(dict(
                query_proj=nn.Linear(embed_dims, embed_dims), sentence_proj=nn.Linear(embed_dims, embed_dims),
                out_proj=nn.Linear(embed_dims, embed_dims)))
            if slot_motion_product == 'trajectory':
                self.sentence_product['trajectory_mlp'] = nn.Sequential(
                    nn.Linear(self.TRAJECTORY_FEATURES, embed_dims), nn.ReLU(inplace=True),
                    nn.Linear(embed_dims, embed_dims))
            elif slot_motion_product:
                self.sentence_product['motion_proj'] = nn.Linear(embed_dims, embed_dims)
        self.temporal_pos_encoding = None if temporal_pos_encoding is None else \
            SinePositionalEncoding1D(**{'num_feats': embed_dims, **temporal_pos_encoding})
        if self.temporal_pos_encoding is not None and self.temporal_pos_encoding.num_feats != embed_dims:
            raise ValueError(f'{name}: temporal_pos_encoding.num_feats must be embed_dims={embed_dims}, '
                             f'got {self.temporal_pos_encoding.num_feats}')

    def init_weights(self) -> None:
        """VOC's init; the product starts at zero (zero output projection), its other Linears xavier-uniform."""
        super().init_weights()
        if self.sentence_product is not None:
            for name, module in self.sentence_product.named_modules():
                if isinstance(module, nn.Linear) and name != 'out_proj':
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)
            nn.init.zeros_(self.sentence_product['out_proj'].weight)
            nn.init.zeros_(self.sentence_product['out_proj'].bias)

    @property
    def needs_frame_boxes(self) -> bool:
        """Whether ``forward`` reads ``frame_boxes`` (``box_encoding`` or ``motion_encoding``)."""
        return self.box_encoding or self.motion_encoding

    # ------------------------------------------------------------------ VOC hooks
    def frame_tokens(self, frame_queries: Tensor, frame_boxes: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """frame_queries [B, T, nq, C] + box code + motion code, and the time code [B, T, nq, C] (or None)."""
        B, T, nq, C = frame_queries.shape
        if self.needs_frame_boxes and (frame_boxes is None or frame_boxes.shape[:3] != (B, T, nq)):
            option = 'box_encoding' if self.box_encoding else 'motion_encoding'
            raise ValueError(f'{type(self).__name__}: {option} needs frame_boxes [{B}, {T}, {nq}, 4], got '
                             f'{None if frame_boxes is None else tuple(frame_boxes.shape)}')
        if self.box_encoding:
            boxes = frame_boxes if frame_boxes.shape[-1] == 4 else torch.cat(
                [frame_boxes, torch.zeros_like(frame_boxes)], -1)  # points: no size
            # mmdet's encoding takes [N, K, 2|4] boxes
            code = coordinate_to_encoding(boxes.detach().reshape(B, T * nq, 4), num_feats=C // 4)
            frame_queries = frame_queries + code.view(B, T, nq, C).to(frame_queries.dtype)
        if self.motion_encoding:
            frame_queries = frame_queries + self.motion_code(frame_boxes).to(frame_queries.dtype)
        return frame_queries, self.frame_time_pos(frame_queries)

    def cross_attn_mask(self, num_frames: int, device: torch.device) -> Optional[Tensor]:
        """``per_slot_clustering``: True (not attended) where the token's slot is not the query's [nq, T * nq]."""
        if not self.per_slot_clustering:
            return None
        slots = torch.arange(self.num_frame_queries, device=device)
        return slots[:, None] != slots.repeat(num_frames)[None]

    def refine_video_queries(self, video_queries: Tensor, sentence_feat: Tensor, frame_queries: Tensor,
                             frame_boxes: Optional[Tensor]) -> Tensor:
        """``sentence_product``: video_queries [B, nq, C] + :meth:`sentence_product_term`."""
        if self.sentence_product is None:
            return video_queries
        slot_motion = None
        if 'motion_proj' in self.sentence_product:
            motion = self.motion_code(frame_boxes).to(frame_queries.dtype)  # [B, T, nq, C]
            slot_motion = self.sentence_product['motion_proj'](motion.mean(1))
        elif 'trajectory_mlp' in self.sentence_product:
            trajectory = self.slot_trajectory(frame_boxes).to(frame_queries.dtype)
            slot_motion = self.sentence_product['trajectory_mlp'](trajectory)
        return video_queries + self.sentence_product_term(video_queries, sentence_feat, slot_motion)

    # ------------------------------------------------------------------ codes and terms
    def frame_time_pos(self, frame_queries: Tensor) -> Optional[Tensor]:
        """Time code of each frame-query token [B, T, nq, C], or None without ``temporal_pos_encoding``."""
        if self.temporal_pos_encoding is None:
            return None
        B, T, nq, C = frame_queries.shape
        no_padding = torch.zeros(B, T, dtype=torch.bool, device=frame_queries.device)
        pos = self.temporal_pos_encoding(no_padding).to(frame_queries.dtype)  # [B, T, C]
        return pos[:, :, None].expand(-1, -1, nq, -1)

    def sentence_product_term(self, video_queries: Tensor, sentence_feat: Tensor,
                              slot_motion: Optional[Tensor] = None) -> Tensor:
        """``sentence_product``'s term: video_queries [B, nq, C], sentence_feat [B, C] and, with
        ``slot_motion_product``, slot_motion [B, nq, C] (``W_m`` of the time-mean motion code of each
        slot, or the trajectory MLP's output) -> [B, nq, C]."""
        product = self.sentence_product
        sentence = F.layer_norm(sentence_feat, sentence_feat.shape[-1:])
        query_side = product['query_proj'](video_queries)
        if slot_motion is not None:
            query_side = query_side + slot_motion
        return product['out_proj'](query_side * product['sentence_proj'](sentence)[:, None])

    @classmethod
    def slot_trajectory(cls, frame_boxes: Tensor) -> Tensor:
        """Motion descriptor of each slot: frame_boxes [B, T, nq, 2|4] (normalised centres first) ->
        [B, nq, 3P] with P = ``TRAJECTORY_POINTS``: the centre linearly interpolated at P evenly spaced
        times from the first to the last frame of the clip (frame index time); for each of the P-1
        displacements between consecutive points and the displacement from the first to the last point,
        its (dx, dy, length) times ``STEP_SCALE``. The same motion gives the same descriptor for any clip
        length. No gradient to the boxes."""
        B, T, nq, _ = frame_boxes.shape
        centres = frame_boxes[..., :2].detach().permute(0, 2, 3, 1).reshape(B, nq * 2, T)
        points = F.interpolate(centres, size=cls.TRAJECTORY_POINTS, mode='linear', align_corners=True)
        points = points.view(B, nq, 2, -1).transpose(2, 3)  # [B, nq, P, 2]
        steps = torch.cat([points[:, :, 1:] - points[:, :, :-1], points[:, :, -1:] - points[:, :, :1]], 2)
        steps = steps * cls.STEP_SCALE  # [B, nq, P, 2]
        lengths = steps.norm(dim=-1, keepdim=True)
        return torch.cat([steps, lengths], -1).reshape(B, nq, cls.TRAJECTORY_FEATURES)

    def motion_code(self, frame_boxes: Tensor) -> Tensor:
        """Sine code of each frame query's motion: frame_boxes [B, T, nq, 2|4] (normalised centres first)
        -> [B, T, nq, C]: C/2 channels code the centre's displacement since frame 0, C/2 its
        displacement since the previous frame (0 in frame 0; times ``STEP_SCALE``), each clamped to
        [-1, 1] and mapped to [0, 1] (mmdet's ``coordinate_to_encoding``). No gradient to the boxes."""
        B, T, nq, _ = frame_boxes.shape
        centres = frame_boxes[..., :2].detach()
        since_start = centres - centres[:, :1]
        since_previous = torch.cat([torch.zeros_like(centres[:, :1]), centres[:, 1:] - centres[:, :-1]], 1)
        codes = [coordinate_to_encoding(((d.clamp(-1, 1) + 1) / 2).reshape(B, T * nq, 2),
                                        num_feats=self.embed_dims // 4)
                 for d in (since_start, since_previous * self.STEP_SCALE)]
        return torch.cat(codes, -1).view(B, T, nq, self.embed_dims)
