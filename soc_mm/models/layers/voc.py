"""VOC: SOC's video object clustering transformer (frame queries -> video queries)."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers import DetrTransformerEncoderLayer
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from soc_mm.registry import MODELS


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

    Variants (e.g. ``MotionAwareVOC``) subclass it and override the hooks :meth:`frame_tokens`,
    :meth:`cross_attn_mask` and :meth:`refine_video_queries` (identities here) and
    :attr:`needs_frame_boxes`.

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
    """

    #: whether ``forward`` reads ``frame_boxes`` (the detector passes the frame queries' boxes only then);
    #: SOC's VOC does not
    needs_frame_boxes = False

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_queries: int = 20,
                 num_frame_queries: int = 20, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                 feedforward_channels: int = 2048, window_size: int = 0, dropout: float = 0.1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if window_size < 0:
            raise ValueError(f'VOC: window_size must be >= 0, got {window_size}')
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

    def init_weights(self) -> None:
        """Official init: xavier-uniform for every >1-D attention/FFN weight."""
        super().init_weights()
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

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

    # ------------------------------------------------------------------ hooks of the variants
    def frame_tokens(self, frame_queries: Tensor, frame_boxes: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """Encoder tokens [B, T, nq, C] and their time code (same shape, or None); SOC: the frame queries, None."""
        return frame_queries, None

    def cross_attn_mask(self, num_frames: int, device: torch.device) -> Optional[Tensor]:
        """Decoder cross-attention mask bool [num_queries, T * nq] (True: not attended) or None (SOC)."""
        return None

    def refine_video_queries(self, video_queries: Tensor, sentence_feat: Tensor, frame_queries: Tensor,
                             frame_boxes: Optional[Tensor]) -> Tensor:
        """Normed decoder output [B, num_queries, C] (+ ``forward``'s inputs) -> video queries; SOC: unchanged."""
        return video_queries

    # ------------------------------------------------------------------ forward
    def forward(self, frame_queries: Tensor, sentence_feat: Tensor, frame_boxes: Optional[Tensor] = None) -> Tensor:
        """Cluster frame queries into video queries.

        Args:
            frame_queries (Tensor): [B, T, nq, C] frame-level object queries of B videos
                (the caller may fold decoder levels into B).
            sentence_feat (Tensor): [B, C] sentence feature (the decoder's initial queries).
            frame_boxes (Tensor, optional): [B, T, nq, 4] normalised (cx, cy, w, h) of the frame
                queries (or [..., 2] points); read only by variants with ``needs_frame_boxes``.

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
        tokens, time_pos = self.frame_tokens(frame_queries, frame_boxes)
        memory = self.encode(tokens, time_pos).flatten(1, 2)  # [B, T * nq, C]
        memory_pos = self.frame_query_pos.weight.repeat(T, 1)[None].expand(B, -1, -1)
        if time_pos is not None:
            memory_pos = memory_pos + time_pos.flatten(1, 2)
        query_pos = self.query_pos.weight[None].expand(B, -1, -1)
        query = sentence_feat[:, None].expand(-1, self.num_queries, -1)
        attn_mask = self.cross_attn_mask(T, frame_queries.device)
        for layer in self.decoder_layers:
            query = layer(query, memory, query_pos, memory_pos, attn_mask)
        query = self.decoder_norm(query)
        return self.refine_video_queries(query, sentence_feat, frame_queries, frame_boxes)
