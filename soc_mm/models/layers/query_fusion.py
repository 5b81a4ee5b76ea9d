"""SOC++'s dynamic query fusion: frame queries attend to the video queries."""
from typing import Optional

from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmengine.model import BaseModule
from torch import Tensor, nn

from soc_mm.registry import MODELS


@MODELS.register_module()
class QueryFusion(BaseModule):
    """One post-norm cross-attention layer: ``LN(frame + Dropout(MHA(frame, video, video)))``.

    SOC adds each video query to the frame queries (``frame + video``); SOC++ lets every frame
    query of a video gather its video's (refined) queries instead, and the class, box and mask
    heads read the result. Built from mmcv's ``MultiheadAttention`` (residual and dropout included)
    and a LayerNorm.

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads (SOC++: 8).
        dropout (float): attention-weight and residual dropout (SOC++: 0.1).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, dropout: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.cross_attn = MultiheadAttention(embed_dims=embed_dims, num_heads=num_heads, attn_drop=dropout,
                                             dropout_layer=dict(type='Dropout', drop_prob=dropout),
                                             batch_first=True)
        self.norm = nn.LayerNorm(embed_dims)

    def init_weights(self) -> None:
        """SOC++'s init: xavier-uniform for every >1-D weight."""
        super().init_weights()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, frame_queries: Tensor, video_queries: Tensor) -> Tensor:
        """frame_queries [N, K, C], video_queries [N, n, C] -> fused frame queries [N, K, C]."""
        return self.norm(self.cross_attn(query=frame_queries, key=video_queries, value=video_queries))
