"""Video-Swin backbone as SOC uses it: per-frame features of the four stages."""
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Union

from einops import rearrange
# ``mmaction.models`` of the mmaction2 1.2.0 wheel needs ``soc_mm.utils.compat``'s shim: ``soc_mm/__init__.py``
# applies it before importing any submodule, and Python runs it first whichever ``soc_mm.*`` is imported.
from mmaction.models.backbones.swin import SwinTransformer3D
from mmengine.logging import MMLogger
from torch import Tensor, nn

from soc_mm.registry import MODELS
from soc_mm.utils.checkpoint import safe_load_local


@MODELS.register_module()
class VideoSwinTransformer(SwinTransformer3D):
    """mmaction2's ``SwinTransformer3D`` configured like SOC's backbone.

    Patch size (1, 4, 4) keeps every frame; each stage's output is taken
    before its patch merging and, unlike mmaction2, without an output norm
    (SOC has none). Window clamping, zero padding to window multiples,
    the top-left lookup of the relative-position bias for clamped windows and
    zero padding of odd sizes before patch merging are mmaction2's code and
    equal SOC's.

    Input ``[B, T, 3, H, W]``; output: 4 maps ``[(B*T), C_i, H/s_i, W/s_i]``,
    batch-major frames ``(b t)``, ``C_i = embed_dims * 2**i``, ``s_i = 4 * 2**i``.

    Kinetics-400 weights (SOC's init): ``init_cfg=dict(type='Pretrained',
    checkpoint=PATH, prefix='backbone.')`` loads a Video-Swin classification
    checkpoint; its temporal patch kernel (size 2) is summed to size 1.

    Args:
        arch (str | dict): mmaction2 arch ('tiny', 'small', 'base', 'large'
            or a dict with ``embed_dims``, ``depths``, ``num_heads``).
        patch_size, window_size, drop_path_rate, ...: see mmaction2's
            ``SwinTransformer3D``; defaults are SOC's.
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'tiny',
                 patch_size: Sequence[int] = (1, 4, 4),
                 window_size: Sequence[int] = (8, 7, 7),
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.2,
                 patch_norm: bool = True,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = [dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
                        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)]
        super().__init__(
            arch=arch, pretrained=None, pretrained2d=False, patch_size=tuple(patch_size),
            window_size=tuple(window_size), mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            qk_scale=qk_scale, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate, patch_norm=patch_norm, frozen_stages=frozen_stages,
            with_cp=with_cp, out_indices=(0, 1, 2, 3), out_after_downsample=False,
            init_cfg=init_cfg)
        # SOC has no output norms: mmaction's forward looks up ``norm{i}``, so identity.
        for i in self.out_indices:
            delattr(self, f'norm{i}')
            self.add_module(f'norm{i}', nn.Identity())
        self.out_channels = list(self.num_features)
        self.strides = [patch_size[1] * 2**i for i in range(self.num_layers)]

    def forward(self, x: Tensor) -> List[Tensor]:
        """x: [B, T, 3, H, W] -> list of 4 [(B*T), C_i, h_i, w_i]."""
        if x.dim() != 5:
            raise ValueError(f'VideoSwinTransformer expects [B, T, 3, H, W], got {tuple(x.shape)}')
        outs = super().forward(x.transpose(1, 2))
        return [rearrange(o, 'b c t h w -> (b t) c h w') for o in outs]

    def train(self, mode: bool = True) -> 'VideoSwinTransformer':
        """mmaction's ``train`` keeps frozen stages frozen but returns None; return self."""
        super().train(mode)
        return self

    def init_weights(self) -> None:
        """Random init, or Kinetics-400 weights with ``init_cfg`` type 'Pretrained'."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_kinetics_checkpoint(cfg['checkpoint'], prefix=cfg.get('prefix', 'backbone.'))
            self._is_init = True
        else:
            super().init_weights()

    def load_kinetics_checkpoint(self, filename: str, prefix: str = 'backbone.') -> None:
        """Load a Video-Swin (Kinetics-400) checkpoint the way SOC does.

        Keys under ``prefix`` of ``state_dict`` (or ``model``, or the top
        level) are loaded strictly, except the output norms (``norm.*`` of
        the Video-Swin repo, ``norm{i}.*`` of mmaction2) that SOC does not use; a patch-embedding
        kernel longer in time than ours is summed over time (``[C, 3, 2, 4, 4] -> [C, 3, 1, 4, 4]``).
        """
        if not osp.isfile(filename):
            raise FileNotFoundError(f'Video-Swin checkpoint not found: {filename!r}')
        ckpt = safe_load_local(filename, map_location='cpu')
        state = ckpt.get('state_dict', ckpt.get('model', ckpt)) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f'{filename!r}: expected a dict of tensors (optionally under '
                             f"'state_dict' or 'model'), got {type(ckpt).__name__}")
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f'{filename!r}: no key starts with prefix {prefix!r}')
        # output norms SOC does not use: ``norm`` (Video-Swin repo) or ``norm{i}`` (mmaction2)
        state = {k: v for k, v in state.items() if not re.match(r'norm\d*\.', k)}
        key = 'patch_embed.proj.weight'
        if key in state and state[key].dim() == 5 and state[key].shape[2] != self.patch_size[0]:
            if self.patch_size[0] != 1:
                raise ValueError(f'{filename!r}: temporal patch size {state[key].shape[2]} cannot be '
                                 f'summed into patch size {self.patch_size[0]} (only 1 is supported)')
            state[key] = state[key].sum(dim=2, keepdim=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f'{filename!r} does not fit the backbone: missing keys {missing}, '
                             f'unexpected keys {unexpected}')
        MMLogger.get_current_instance().info(f'VideoSwinTransformer: loaded {filename}')
