"""SOC's multi-modal fusion (``MMF``): cross-attention that gates the query."""
from typing import Optional

from mmengine.model import BaseModule
from torch import Tensor, nn

from soc_mm.registry import MODELS


@MODELS.register_module()
class VisionLanguageFusion(BaseModule):
    """One cross-attention whose output multiplies the query element-wise.

    ``out = query * MHA(query + query_pos, key + key_pos, key)`` (no residual,
    no norm). SOC uses it twice: ``vlf`` (visual tokens attend to words) and
    ``lvf`` (words attend to one level's visual tokens).

    Args:
        embed_dims (int): channels C of query and key.
        num_heads (int): attention heads (SOC: 8).
        dropout (float): attention dropout (SOC: 0).
    """

    def __init__(self, embed_dims: int, num_heads: int = 8, dropout: float = 0.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)

    def forward(self,
                query: Tensor,
                key: Tensor,
                key_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None) -> Tensor:
        """query [B, Nq, C], key [B, Nk, C], key_pos [B, Nk, C] or None,
        key_padding_mask bool [B, Nk] (True = ignore) -> [B, Nq, C]."""
        q = query if query_pos is None else query + query_pos
        k = key if key_pos is None else key + key_pos
        attended = self.attn(q, k, key, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return query * attended
