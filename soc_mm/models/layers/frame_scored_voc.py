"""FrameScoredVOC: SOC++'s cluster decoder (frames weighted by three per-frame scores)."""
from typing import Optional

import torch
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from soc_mm.registry import MODELS
from .voc import VOC


def _ffn(embed_dims: int, feedforward_channels: int, dropout: float) -> FFN:
    """Two-layer ReLU FFN with the residual (mmcv), as SOC's VOC FFNs."""
    return FFN(embed_dims=embed_dims, feedforward_channels=feedforward_channels, num_fcs=2, ffn_drop=dropout,
               act_cfg=dict(type='ReLU', inplace=True))


class FrameScorer(BaseModule):
    """A per-frame score in (0, 1) from all of a frame's queries: ``sigmoid(fc(LN(x + FFN(x))))``.

    Args:
        in_channels (int): nq * C (the frame's queries concatenated).
        feedforward_channels (int): FFN hidden size.
        dropout (float): FFN dropout (SOC++: 0.1).
    """

    def __init__(self, in_channels: int, feedforward_channels: int, dropout: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.ffn = _ffn(in_channels, feedforward_channels, dropout)
        self.norm = nn.LayerNorm(in_channels)
        self.fc = nn.Linear(in_channels, 1)

    def forward(self, frames: Tensor) -> Tensor:
        """frames [N, T, nq * C] -> scores [N, T, 1]."""
        return torch.sigmoid(self.fc(self.norm(self.ffn(frames))))


class VOCCrossEncoderLayer(BaseModule):
    """SOC++'s VOC encoder layer: the frame queries attend to the score-weighted frame queries,
    then an FFN, each post-normed (SOC's VOC encoder layer is a self-attention layer).

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads.
        feedforward_channels (int): FFN hidden size.
        dropout (float): attention-weight, residual and FFN dropout.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, feedforward_channels: int = 2048,
                 dropout: float = 0.1, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.cross_attn = MultiheadAttention(embed_dims=embed_dims, num_heads=num_heads, attn_drop=dropout,
                                             dropout_layer=dict(type='Dropout', drop_prob=dropout),
                                             batch_first=True)
        self.ffn = _ffn(embed_dims, feedforward_channels, dropout)
        self.norms = ModuleList([nn.LayerNorm(embed_dims) for _ in range(2)])

    def forward(self, query: Tensor, memory: Tensor) -> Tensor:
        """query [N, S, C], memory [N, S', C] (no positional code) -> [N, S, C]."""
        query = self.norms[0](self.cross_attn(query=query, key=memory, value=memory))
        return self.norms[1](self.ffn(query))


@MODELS.register_module()
class FrameScoredVOC(VOC):
    """SOC++'s cluster decoder: VOC whose encoder reads the frames through three per-frame scores.

    For the frame queries ``f_t`` [nq, C] of a video and its sentence feature ``s`` (SOC++: the
    mean of the words updated by the proxies):

    * visibility ``v_t = FrameScorer(f_t)``;
    * text match ``m_t = sigmoid(mean_q cos(f_t[q], s))`` -- in the frame order of SOC++ (below);
    * difference from history ``d_t = FrameScorer(f_t - mean_{t' <= t} f_t')``;

    ``score_t = v_t + m_t + 0.5 d_t``. Encoder layer i: ``x = FFN(CrossAttn(x, score * f))`` with
    ``x = f`` at first (every layer attends to the same score-weighted frames). Decoder: as VOC, but
    the initial video queries are ``s + query_content`` (learned) instead of ``s``.

    SOC++'s text-match quirk, reproduced (its checkpoints were trained with it, at batch 1): the
    official code flattens the frame queries time-major ``(t, l)`` and the sentence ``(l, t)`` and pairs
    them row by row, so the score written at (layer l, frame t) of a video is the cosine of its frame
    ``(t', l')`` = ``divmod(l*T + t, L)`` with the sentence. Hence ``forward`` needs the number of
    decoder layers L folded into its batch. With L = 1 the order is the natural one. The official code
    applies the same flattening to the whole batch, so with several videos in one forward a video's
    scores read other videos' frames; here each video is paired with its own frames, so a batch of
    expressions gives each the scores it gets alone (as the official evaluation, one expression per
    forward). ``soc_mm.official.BatchPairingFrameScoredVOC`` reproduces the batch-wide pairing for the
    golden comparison.

    Args:
        embed_dims, num_heads, num_queries, num_frame_queries, num_encoder_layers, num_decoder_layers,
            feedforward_channels, dropout: as ``VOC``.
        window_size (int): must be 0: SOC++'s windowed encoder path does not run (its cross-attention
            layers are called with self-attention arguments).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_queries: int = 20,
                 num_frame_queries: int = 20, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                 feedforward_channels: int = 2048, window_size: int = 0, dropout: float = 0.1,
                 init_cfg=None) -> None:
        if window_size != 0:
            raise ValueError(f'FrameScoredVOC: window_size must be 0, got {window_size} (SOC++ has no working '
                             'windowed encoder)')
        super().__init__(embed_dims=embed_dims, num_heads=num_heads, num_queries=num_queries,
                         num_frame_queries=num_frame_queries, num_encoder_layers=0,
                         num_decoder_layers=num_decoder_layers, feedforward_channels=feedforward_channels,
                         window_size=0, dropout=dropout, init_cfg=init_cfg)
        self.encoder_layers = ModuleList([
            VOCCrossEncoderLayer(embed_dims, num_heads, feedforward_channels, dropout)
            for _ in range(num_encoder_layers)
        ])
        flat = num_frame_queries * embed_dims
        self.visibility_scorer = FrameScorer(flat, feedforward_channels, dropout)
        self.difference_scorer = FrameScorer(flat, feedforward_channels, dropout)
        self.query_content = nn.Embedding(num_queries, embed_dims)

    def init_weights(self) -> None:
        """SOC++'s init: xavier-uniform for the >1-D weights of the attention/FFN layers and of the
        scorers' FFNs (their final Linear keeps PyTorch's default)."""
        super().init_weights()
        for scorer in (self.visibility_scorer, self.difference_scorer):
            for p in scorer.ffn.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def text_match_score(self, frame_queries: Tensor, sentence_feat: Tensor, num_layers: int) -> Tensor:
        """frame_queries [N, T, nq, C] (N = L*B, row l*B + b), sentence_feat [N, C] -> [N, T, 1],
        in SOC++'s pairing within each video (class docstring)."""
        N, T = frame_queries.shape[:2]
        B = N // num_layers
        device = frame_queries.device
        layer = torch.arange(num_layers, device=device).view(-1, 1, 1)
        video = torch.arange(B, device=device).view(1, -1, 1)
        time = torch.arange(T, device=device).view(1, 1, -1)
        row = layer * T + time  # [L, 1, T]: the official flat row of (l, t) in a video
        source = ((row % num_layers) * B + video).reshape(N, T)  # frame queries of layer l' of the same video
        frames = frame_queries[source, (row // num_layers).expand(-1, B, -1).reshape(N, T)]
        return self.cosine_score(frames, sentence_feat)

    @staticmethod
    def cosine_score(frames: Tensor, sentence_feat: Tensor) -> Tensor:
        """sigmoid of the mean over the frame queries of their cosine with the sentence:
        frames [N, T, nq, C], sentence_feat [N, C] -> [N, T, 1]."""
        frames = frames / frames.norm(p=2, dim=-1, keepdim=True)
        sentence = sentence_feat / sentence_feat.norm(p=2, dim=-1, keepdim=True)
        return torch.sigmoid((frames * sentence[:, None, None]).sum(-1).mean(-1, keepdim=True))

    def frame_scores(self, frame_queries: Tensor, sentence_feat: Tensor, num_layers: int = 1) -> Tensor:
        """[N, T, nq, C], [N, C] -> ``v + m + 0.5 d`` [N, T, 1] (class docstring)."""
        T = frame_queries.shape[1]
        flat = frame_queries.flatten(2)
        steps = torch.arange(1, T + 1, dtype=flat.dtype, device=flat.device).view(1, T, 1)
        history = flat.cumsum(1) / steps
        return (self.visibility_scorer(flat) + self.text_match_score(frame_queries, sentence_feat, num_layers)
                + 0.5 * self.difference_scorer(flat - history))

    def forward(self, frame_queries: Tensor, sentence_feat: Tensor, frame_boxes: Optional[Tensor] = None,
                num_layers: int = 1) -> Tensor:
        """Cluster frame queries into video queries.

        Args:
            frame_queries (Tensor): [N, T, nq, C], N = L*B (decoder layer l, video b at row l*B + b).
            sentence_feat (Tensor): [N, C] (row l*B + b: video b's sentence feature).
            frame_boxes: not read (``needs_frame_boxes`` is False).
            num_layers (int): L, the decoder layers folded into N (the text-match pairing depends on it).

        Returns:
            Tensor: [N, num_queries, C] video queries.
        """
        if frame_queries.dim() != 4:
            raise ValueError(f'FrameScoredVOC: frame_queries must be [N, T, nq, C], got {tuple(frame_queries.shape)}')
        N, T, nq, C = frame_queries.shape
        if nq != self.num_frame_queries:
            raise ValueError(f'FrameScoredVOC: got {nq} frame queries per frame, num_frame_queries is '
                             f'{self.num_frame_queries}')
        if sentence_feat.shape != (N, C):
            raise ValueError(f'FrameScoredVOC: sentence_feat must be [{N}, {C}], got {tuple(sentence_feat.shape)}')
        if num_layers < 1 or N % num_layers:
            raise ValueError(f'FrameScoredVOC: num_layers={num_layers} does not divide the {N} frame sequences')
        scores = self.frame_scores(frame_queries, sentence_feat, num_layers)
        tokens = frame_queries.flatten(1, 2)  # [N, T * nq, C]
        scored = tokens * scores.repeat_interleave(nq, dim=1)
        memory = tokens
        for layer in self.encoder_layers:
            memory = layer(memory, scored)
        memory_pos = self.frame_query_pos.weight.repeat(T, 1)[None].expand(N, -1, -1)
        query_pos = self.query_pos.weight[None].expand(N, -1, -1)
        query = sentence_feat[:, None] + self.query_content.weight[None]
        for layer in self.decoder_layers:
            query = layer(query, memory, query_pos, memory_pos)
        return self.decoder_norm(query)
