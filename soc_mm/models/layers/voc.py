"""VOC: SOC's video object clustering transformer (frame queries -> video queries)."""
import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers import DetrTransformerEncoderLayer
from mmdet.models.layers.transformer.utils import coordinate_to_encoding
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from soc_mm.registry import MODELS
from .positional_encoding import SinePositionalEncoding1D


class VOCDecoderLayer(BaseModule):
    """VOC decoder layer: cross-attention, then self-attention, then FFN, each post-normed.

    mmdet's ``DetrTransformerDecoderLayer`` runs self-attention before cross-attention,
    so the order differs; the pieces (mmcv ``MultiheadAttention``/``FFN``) are the same.

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads.
        feedforward_channels (int): FFN hidden size.
        dropout (float): attention-weight, residual and FFN dropout.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, feedforward_channels: int = 2048,
                 dropout: float = 0.1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        attn_cfg = dict(embed_dims=embed_dims, num_heads=num_heads, attn_drop=dropout,
                        dropout_layer=dict(type='Dropout', drop_prob=dropout), batch_first=True)
        self.cross_attn = MultiheadAttention(**attn_cfg)
        self.self_attn = MultiheadAttention(**attn_cfg)
        self.ffn = FFN(embed_dims=embed_dims, feedforward_channels=feedforward_channels, num_fcs=2,
                       ffn_drop=dropout, act_cfg=dict(type='ReLU', inplace=True))
        self.norms = ModuleList([build_norm_layer(dict(type='LN'), embed_dims)[1] for _ in range(3)])

    def forward(self, query: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor,
                cross_attn_mask: Optional[Tensor] = None) -> Tensor:
        """query/query_pos [B, nq, C]; memory/memory_pos [B, S, C]; cross_attn_mask bool [nq, S]
        (True: not attended) or None -> [B, nq, C]."""
        query = self.norms[0](self.cross_attn(query=query, key=memory, value=memory,
                                              query_pos=query_pos, key_pos=memory_pos,
                                              attn_mask=cross_attn_mask))
        query = self.norms[1](self.self_attn(query=query, query_pos=query_pos, key_pos=query_pos))
        return self.norms[2](self.ffn(query))


@MODELS.register_module()
class VOC(BaseModule):
    """SOC's VOC module: temporal encoder over frame queries + language-driven decoder.

    Encoder: self-attention + FFN layers over all ``T * nq`` frame-query tokens of a video
    (``window_size == 0``) or over temporal windows of ``window_size`` frames. Windowed mode pads
    time to a multiple of the window (padded frames are masked as keys). In training every
    layer uses plain windows; in eval odd layers use windows shifted by ``ceil(W / 2)`` frames with
    an additive ``-1000`` mask (as the official code). Decoder: the initial video queries are the
    sentence feature repeated ``num_queries`` times; layers = cross-attn to the encoded frame
    queries (keys + ``frame_query_pos`` tiled over time), self-attn, FFN (post-norm); a final
    LayerNorm.

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads.
        num_queries (int): number of video queries produced.
        num_frame_queries (int): frame queries per frame (nq of the frame decoder).
        num_encoder_layers (int): encoder layers (0 disables the encoder).
        num_decoder_layers (int): decoder layers.
        feedforward_channels (int): FFN hidden size.
        window_size (int): temporal window in frames, 0 = global attention.
        dropout (float): dropout everywhere (official 0.1).
        temporal_pos_encoding (dict, optional): ``SinePositionalEncoding1D`` args of a parameter-free
            code of each frame's position in the clip (normalised to ``(0, 2*pi]``), added to the
            frame-query tokens' positions in the encoder's self-attention and the decoder's keys.
            ``None`` (official SOC): no time code, so VOC sees a clip's frames as an unordered set
            and cannot tell "moves left" from "moves right" (time reversals of each other); the
            MeViS configs switch it on. No weights: official checkpoints load either way.
        box_encoding (bool): add a sine code of each frame query's box (the decoder layer's refined
            reference, ``(cx, cy, w, h)``; mmdet's ``coordinate_to_encoding``) to the frame-query
            tokens. The hidden states of a box-refining decoder hold box *deltas*, not positions,
            so without it VOC cannot follow where an object goes. Default False (official); no
            weights.
        motion_encoding (bool): add a sine code of each frame query's motion to its token: the box
            centre's displacement since the clip's first frame and since the previous frame
            (``frame_boxes`` needed). Meant with the detector's ``query_propagation``, where a query
            slot follows one object through the clip, so that the displacement is the object's:
            "moves left" and "stops" are then read from one token, not from differences the
            attention would have to learn. Default False (official); no weights.
        per_slot_clustering (bool): video query i attends to frame query slot i only (in every frame),
            so that its score judges that slot's object; needs ``num_queries == num_frame_queries``.
            Default False (official: every video query attends to every frame query); no weights.
        sentence_product (bool): add a low-rank bilinear term of each video query and the sentence to
            the video query after the decoder (MLB pooling, Kim et al. 2017):
            ``q += W_o((W_q q) * (W_s LN(s)))``. The class branch is linear in the video query, and the
            decoder only adds the sentence to the attended frame queries, so "does this slot's motion
            match the expression's motion word" would need the FFNs to learn a product of two small
            signals (slow from random weights: with it off, a trained tiny model's scores barely
            change between "moves left" and "moves right"); this term gives the product directly.
            ``W_o`` starts at zero, so the module starts as without it (and an official checkpoint
            loaded with ``strict=False`` predicts as before). Default False (official); 3 CxC weights.
        slot_motion_product (bool | str): the product's video-query side also reads the slot's motion
            directly: ``W_q q + W_m mean_t(motion code of slot i)``. A trained tiny model's video
            queries did not keep the motion code (a linear probe of their twin's motion was at chance,
            one of the slot's box displacement reached 0.78): with the motion word ignored the
            motion is useless to the loss, and with the motion gone the word is, so neither is learned;
            this term lets the loss see their product from the first step. Needs ``sentence_product``,
            ``motion_encoding`` and ``per_slot_clustering`` (video query i is slot i). Default False;
            1 CxC weight. ``'trajectory'``: the slot's motion is read instead by a 2-layer MLP from its
            centre at ``TRAJECTORY_POINTS`` evenly spaced times of the clip (``slot_trajectory``: the
            displacements between them, the whole displacement and their lengths): "stays still",
            "stops moving" and "moves left" differ there by which segments are zero, which the time
            mean of a sine code blurs (a trained tiny model's product did not tell "stays still" from
            "stops moving"). 12xC + CxC weights.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_queries: int = 20,
                 num_frame_queries: int = 20, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                 feedforward_channels: int = 2048, window_size: int = 0, dropout: float = 0.1,
                 temporal_pos_encoding: Optional[dict] = None, box_encoding: bool = False,
                 motion_encoding: bool = False, per_slot_clustering: bool = False, sentence_product: bool = False,
                 slot_motion_product: Union[bool, str] = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if window_size < 0:
            raise ValueError(f'VOC: window_size must be >= 0, got {window_size}')
        if per_slot_clustering and num_queries != num_frame_queries:
            raise ValueError(f'VOC: per_slot_clustering needs num_queries == num_frame_queries, got '
                             f'{num_queries} and {num_frame_queries}')
        if motion_encoding and embed_dims % 4:
            raise ValueError(f'VOC: motion_encoding needs embed_dims divisible by 4, got {embed_dims}')
        if slot_motion_product not in (False, True, 'trajectory'):
            raise ValueError(f"VOC: slot_motion_product must be False, True or 'trajectory', got "
                             f'{slot_motion_product!r}')
        if slot_motion_product and not (sentence_product and motion_encoding and per_slot_clustering):
            raise ValueError('VOC: slot_motion_product needs sentence_product, motion_encoding and '
                             f'per_slot_clustering, got {sentence_product}, {motion_encoding} and '
                             f'{per_slot_clustering}')
        self.motion_encoding = motion_encoding
        self.per_slot_clustering = per_slot_clustering
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_queries = num_queries
        self.num_frame_queries = num_frame_queries
        self.window_size = window_size
        self.encoder_layers = ModuleList([
            DetrTransformerEncoderLayer(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads, attn_drop=dropout,
                                   dropout_layer=dict(type='Dropout', drop_prob=dropout), batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=feedforward_channels,
                             num_fcs=2, ffn_drop=dropout, act_cfg=dict(type='ReLU', inplace=True)))
            for _ in range(num_encoder_layers)
        ])
        self.decoder_layers = ModuleList([
            VOCDecoderLayer(embed_dims, num_heads, feedforward_channels, dropout)
            for _ in range(num_decoder_layers)
        ])
        self.frame_query_pos = nn.Embedding(num_frame_queries, embed_dims)
        self.query_pos = nn.Embedding(num_queries, embed_dims)
        self.decoder_norm = nn.LayerNorm(embed_dims)
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
        if box_encoding and embed_dims % 4:
            raise ValueError(f'VOC: box_encoding needs embed_dims divisible by 4 (one sine code per box value), '
                             f'got {embed_dims}')
        self.box_encoding = box_encoding
        self.temporal_pos_encoding = None if temporal_pos_encoding is None else \
            SinePositionalEncoding1D(**{'num_feats': embed_dims, **temporal_pos_encoding})
        if self.temporal_pos_encoding is not None and self.temporal_pos_encoding.num_feats != embed_dims:
            raise ValueError(f'VOC: temporal_pos_encoding.num_feats must be embed_dims={embed_dims}, '
                             f'got {self.temporal_pos_encoding.num_feats}')

    def init_weights(self) -> None:
        """Official init: xavier-uniform for every >1-D attention/FFN weight."""
        super().init_weights()
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        if self.sentence_product is not None:  # starts as the plain VOC (zero output projection)
            for name, module in self.sentence_product.named_modules():
                if isinstance(module, nn.Linear) and name != 'out_proj':
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)
            nn.init.zeros_(self.sentence_product['out_proj'].weight)
            nn.init.zeros_(self.sentence_product['out_proj'].bias)

    # ------------------------------------------------------------------ encoder
    def _window_masks(self, num_videos: int, num_frames: int, device) -> tuple:
        """Masks for padded windows.

        Returns:
            pad_mask (Tensor): bool [B, Tp], True on padded frames.
            key_padding_mask (Tensor): bool [B * Nw, W * nq] for plain windows.
            shift_attn_mask (Tensor): float [B * Nw * heads, W * nq, W * nq] (0 / -1000)
                for shifted windows.
        """
        W, nq = self.window_size, self.num_frame_queries
        padded = int(math.ceil(num_frames / W)) * W
        num_windows = padded // W
        half = int(math.ceil(W / 2))
        pad_mask = torch.ones(num_videos, padded, dtype=torch.bool, device=device)
        pad_mask[:, :num_frames] = False
        key_padding_mask = pad_mask.view(num_videos * num_windows, W, 1).expand(-1, -1, nq).reshape(
            num_videos * num_windows, W * nq)
        # shifted windows: query rows of padded frames are masked; in the first and last window
        # keys too; in the first window the wrapped-around half does not see the other half.
        rolled = torch.roll(pad_mask, half, 1).view(num_videos, num_windows, W, 1).expand(-1, -1, -1, W)
        shift = rolled.clone()
        shift[:, 0] = shift[:, 0] | shift[:, 0].transpose(-2, -1)
        shift[:, -1] = shift[:, -1] | shift[:, -1].transpose(-2, -1)
        shift[:, 0, :half, half:] = True
        shift[:, 0, half:, :half] = True
        shift = shift.view(num_videos * num_windows, 1, W, 1, W, 1).expand(
            -1, self.num_heads, -1, nq, -1, nq).reshape(num_videos * num_windows * self.num_heads,
                                                        W * nq, W * nq)
        return pad_mask, key_padding_mask, shift.float() * -1000

    def _windowed(self, layer: nn.Module, x: Tensor, shift: int, pos: Optional[Tensor] = None,
                  **attn_kwargs) -> Tensor:
        """Run ``layer`` on temporal windows of x [B, Tp, nq, C] (rolled by ``shift`` frames);
        ``pos`` [B, Tp, nq, C] (or None) is the tokens' positional code."""
        B, Tp, nq, C = x.shape
        W = self.window_size
        if shift:
            x = torch.roll(x, shift, 1)
            pos = None if pos is None else torch.roll(pos, shift, 1)
        if pos is not None:
            pos = pos.reshape(B * (Tp // W), W * nq, C)
        x = layer(x.reshape(B * (Tp // W), W * nq, C), query_pos=pos, **attn_kwargs)
        x = x.reshape(B, Tp, nq, C)
        if shift:
            x = torch.roll(x, -shift, 1)
        return x

    def frame_time_pos(self, frame_queries: Tensor) -> Optional[Tensor]:
        """Time code of each frame-query token [B, T, nq, C], or None without ``temporal_pos_encoding``."""
        if self.temporal_pos_encoding is None:
            return None
        B, T, nq, C = frame_queries.shape
        no_padding = torch.zeros(B, T, dtype=torch.bool, device=frame_queries.device)
        pos = self.temporal_pos_encoding(no_padding).to(frame_queries.dtype)  # [B, T, C]
        return pos[:, :, None].expand(-1, -1, nq, -1)

    def encode(self, frame_queries: Tensor, time_pos: Optional[Tensor] = None) -> Tensor:
        """frame_queries [B, T, nq, C] (time_pos: same shape or None) -> encoded [B, T, nq, C]."""
        B, T, nq, C = frame_queries.shape
        if self.window_size == 0:
            x = frame_queries.flatten(1, 2)
            pos = None if time_pos is None else time_pos.flatten(1, 2)
            for layer in self.encoder_layers:
                x = layer(x, query_pos=pos, key_padding_mask=None)
            return x.view(B, T, nq, C)
        W = self.window_size
        pad_mask, key_padding_mask, shift_mask = self._window_masks(B, T, frame_queries.device)
        x = F.pad(frame_queries, (0, 0, 0, 0, 0, pad_mask.shape[1] - T))
        pos = None if time_pos is None else F.pad(time_pos, (0, 0, 0, 0, 0, pad_mask.shape[1] - T))
        half = int(math.ceil(W / 2))
        for i, layer in enumerate(self.encoder_layers):
            if self.training or i % 2 == 0:
                x = self._windowed(layer, x, 0, pos, key_padding_mask=key_padding_mask)
            else:
                x = self._windowed(layer, x, half, pos, key_padding_mask=None, attn_mask=shift_mask)
        return x[:, :T]

    # ------------------------------------------------------------------ forward
    def forward(self, frame_queries: Tensor, sentence_feat: Tensor, frame_boxes: Optional[Tensor] = None) -> Tensor:
        """Cluster frame queries into video queries.

        Args:
            frame_queries (Tensor): [B, T, nq, C] frame-level object queries of B videos
                (the caller may fold decoder levels into B).
            sentence_feat (Tensor): [B, C] sentence feature (the decoder's initial queries).
            frame_boxes (Tensor, optional): [B, T, nq, 4] normalised (cx, cy, w, h) of the frame
                queries (or [..., 2] points); needed with ``box_encoding``, ignored without.

        Returns:
            Tensor: [B, num_queries, C] video-level object queries.
        """
        if frame_queries.dim() != 4:
            raise ValueError(f'VOC: frame_queries must be [B, T, nq, C], got {tuple(frame_queries.shape)}')
        B, T, nq, C = frame_queries.shape
        if nq != self.num_frame_queries:
            raise ValueError(f'VOC: got {nq} frame queries per frame, num_frame_queries is '
                             f'{self.num_frame_queries} (the positional table is tiled over frames)')
        if sentence_feat.shape != (B, C):
            raise ValueError(f'VOC: sentence_feat must be [{B}, {C}], got {tuple(sentence_feat.shape)}')
        if self.needs_frame_boxes and (frame_boxes is None or frame_boxes.shape[:3] != (B, T, nq)):
            option = 'box_encoding' if self.box_encoding else 'motion_encoding'
            raise ValueError(f'VOC: {option} needs frame_boxes [{B}, {T}, {nq}, 4], got '
                             f'{None if frame_boxes is None else tuple(frame_boxes.shape)}')
        if self.box_encoding:
            boxes = frame_boxes if frame_boxes.shape[-1] == 4 else torch.cat(
                [frame_boxes, torch.zeros_like(frame_boxes)], -1)  # points: no size
            # mmdet's encoding takes [N, K, 2|4] boxes
            code = coordinate_to_encoding(boxes.detach().reshape(B, T * nq, 4), num_feats=C // 4)
            frame_queries = frame_queries + code.view(B, T, nq, C).to(frame_queries.dtype)
        motion = None
        if self.motion_encoding:
            motion = self.motion_code(frame_boxes).to(frame_queries.dtype)  # [B, T, nq, C]
            frame_queries = frame_queries + motion
        time_pos = self.frame_time_pos(frame_queries)
        memory = self.encode(frame_queries, time_pos).flatten(1, 2)  # [B, T * nq, C]
        memory_pos = self.frame_query_pos.weight.repeat(T, 1)[None].expand(B, -1, -1)
        if time_pos is not None:
            memory_pos = memory_pos + time_pos.flatten(1, 2)
        query_pos = self.query_pos.weight[None].expand(B, -1, -1)
        query = sentence_feat[:, None].expand(-1, self.num_queries, -1)
        slot_mask = None
        if self.per_slot_clustering:  # True (not attended) where the token's slot is not the query's
            slots = torch.arange(nq, device=frame_queries.device)
            slot_mask = slots[:, None] != slots.repeat(T)[None]  # [nq, T * nq]
        for layer in self.decoder_layers:
            query = layer(query, memory, query_pos, memory_pos, slot_mask)
        query = self.decoder_norm(query)
        if self.sentence_product is not None:
            slot_motion = None
            if 'motion_proj' in self.sentence_product:
                slot_motion = self.sentence_product['motion_proj'](motion.mean(1))
            elif 'trajectory_mlp' in self.sentence_product:
                trajectory = self.slot_trajectory(frame_boxes).to(frame_queries.dtype)
                slot_motion = self.sentence_product['trajectory_mlp'](trajectory)
            query = query + self.sentence_product_term(query, sentence_feat, slot_motion)
        return query

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

    @property
    def needs_frame_boxes(self) -> bool:
        """Whether ``forward`` reads ``frame_boxes`` (``box_encoding`` or ``motion_encoding``)."""
        return self.box_encoding or self.motion_encoding

    #: the displacement since the previous frame is scaled by this before its code (a few % of
    #: the frame per step otherwise use a sliver of the code's range)
    STEP_SCALE = 4.0

    #: times (evenly spaced over the clip, first and last frame included) of ``slot_trajectory``
    TRAJECTORY_POINTS = 4
    #: its features: (dx, dy, length) of the P-1 segments and of the whole displacement
    TRAJECTORY_FEATURES = 3 * TRAJECTORY_POINTS

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
