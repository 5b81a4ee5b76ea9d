"""VisionLanguageFusion (soc_mm/models/layers/vision_language_fusion.py)."""
import torch

import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.layers import VisionLanguageFusion


def test_vision_language_fusion_gates_query():
    torch.manual_seed(0)
    fusion = VisionLanguageFusion(16, num_heads=4).eval()
    query, key, key_pos = torch.randn(2, 5, 16), torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    mask = torch.tensor([[False, False, True], [False, False, False]])
    out = fusion(query, key, key_pos=key_pos, key_padding_mask=mask)
    attended = fusion.attn(query, key + key_pos, key, key_padding_mask=mask)[0]
    torch.testing.assert_close(out, query * attended)
    # a masked key has no influence
    key2 = key.clone()
    key2[0, 2] += 100
    torch.testing.assert_close(fusion(query, key2, key_pos=key_pos, key_padding_mask=mask)[0], out[0])
