"""Make ``tests/data/variants_regression/fixture.pt``: the outputs of the tiny MeViS-demo SOC and of the plain
tiny SOC with known weights.

``tests/test_models/test_variant_regression.py`` builds both configs with the code of the checkout, loads the
saved state dicts strictly and checks that the same batch gives the saved losses and tensors. The saved file
was made with the code in which the MeViS-demo options were arguments of ``SOC``, ``VOC`` and
``RoBERTaTextEncoder`` (before they moved to the ``QueryPropagationSOC``, ``MotionAwareVOC`` and
``MeanPoolRoBERTaTextEncoder`` subclasses): a checkpoint trained with the previous demo config loads into the
new one strictly and computes the same. Regenerate it only on purpose (a change of the maths)::

    python tests/test_models/variant_regression_fixture.py [--out tests/data/variants_regression/fixture.pt]

The script reads the configs of the checkout it lives in (``configs/soc/soc_tiny_synthetic{,_mevis}.py``) and
shrinks them with :data:`SIZE_OVERRIDES` (size-only settings); the text encoder is the tiny RoBERTa of the
golden fixtures. The weights are seeded random ones (the initialised ones plus noise, so that no parameter is
zero: ``sentence_product.out_proj`` starts at 0 otherwise and its term would not be checked), each float tensor
rounded to 8-bit codes times a power of two (stored as int8 codes + exponent, so that the file stays < 2 MB;
decoded exactly to the float32 weights the outputs were computed with). Both models share them (the MeViS-demo
model has the tiny SOC's parameters plus ``voc.sentence_product.*``); each model's state-dict keys are saved.
Dropout is off (its draws depend on the order of the modules' calls, not on the maths); the loss runs in train
mode (VOC clusters every decoder layer), the tensor mode in eval mode.
"""
import argparse
import logging
import math
import os.path as osp
from typing import Dict, List, Tuple

import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO_ROOT = osp.dirname(osp.dirname(HERE))
TEXT_ENCODER_DIR = osp.join(REPO_ROOT, 'tests', 'data', 'soc_reference', 'common', 'text_encoder')
DEFAULT_OUT = osp.join(REPO_ROOT, 'tests', 'data', 'variants_regression', 'fixture.pt')
#: name -> config (relative to the repository root)
CONFIGS = {'tiny': 'configs/soc/soc_tiny_synthetic.py', 'mevis': 'configs/soc/soc_tiny_synthetic_mevis.py'}
#: size-only overrides of both configs (``Config.merge_from_dict`` keys): an 8-channel Video-Swin of one
#: block per stage with (2, 4, 4) windows, one deformable encoder layer, one VOC encoder and decoder layer,
#: FFNs of 32, the fixtures' 32-channel RoBERTa
SIZE_OVERRIDES = {
    'model.text_encoder.model_path': TEXT_ENCODER_DIR,
    'model.backbone.arch': dict(_delete_=True, embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]),
    'model.backbone.window_size': (2, 4, 4),
    'model.neck.in_channels': [16, 32, 64],
    'model.spatial_decoder.skip_channels': [128, 128, 8],
    'model.encoder.num_layers': 1,
    'model.encoder.layer_cfg.ffn_cfg.feedforward_channels': 32,
    'model.decoder.layer_cfg.ffn_cfg.feedforward_channels': 32,
    'model.voc.num_encoder_layers': 1,
    'model.voc.num_decoder_layers': 1,
    'model.voc.feedforward_channels': 32,
}
EXPRESSIONS = ['the red circle on the left', 'a dog']
NUM_FRAMES, HEIGHT, WIDTH = 5, 48, 48
SEED = 0


def build_model(name: str):
    """The model of ``CONFIGS[name]`` with :data:`SIZE_OVERRIDES` (weights as initialised: call
    :func:`random_state_dict` or load a state dict)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import soc_mm  # noqa: F401  (registries)
    from soc_mm.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO_ROOT, CONFIGS[name]))
    cfg.merge_from_dict(SIZE_OVERRIDES)
    init_default_scope('soc_mm')
    return MODELS.build(cfg.model)


def random_weights(model, seed: int = SEED) -> Dict[str, Dict]:
    """Seeded random weights of ``model``: the initialised ones plus noise of 0.05 times their std (0.05 for
    constant ones, e.g. zero-initialised projections), each float tensor as 8-bit codes q (int8, |q| <= 127)
    and an exponent e (the weight is q * 2**e); other tensors (index buffers) as they are.

    Returns ``dict(codes={key: int8 tensor}, exponents={key: int}, buffers={key: tensor})``.
    """
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # not the initialisation report of every parameter
    try:
        torch.manual_seed(seed)
        model.init_weights()
    finally:
        logger.setLevel(level)
    generator = torch.Generator().manual_seed(seed)
    weights = dict(codes={}, exponents={}, buffers={})
    params = dict(model.named_parameters())
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            weights['buffers'][key] = value.clone()
            continue
        if key in params:
            std = value.std().item() if value.numel() > 1 else 0.0
            value = value + torch.randn(value.shape, generator=generator) * (0.05 * std if std > 0 else 0.05)
        absmax = value.abs().max().item()
        exponent = math.floor(math.log2(absmax / 127)) if absmax > 0 else 0
        weights['codes'][key] = torch.round(value * 2.0**-exponent).clamp(-127, 127).to(torch.int8)
        weights['exponents'][key] = exponent
    return weights


def state_dict_of(weights: Dict[str, Dict], keys: List[str]) -> Dict[str, torch.Tensor]:
    """The float32 state dict of ``keys`` from :func:`random_weights`' codes (exact: q * 2**e)."""
    return {k: weights['buffers'][k] if k in weights['buffers'] else
            weights['codes'][k].float() * 2.0**weights['exponents'][k] for k in keys}


def load_weights(model, state_dict: Dict[str, torch.Tensor]):
    """Load ``state_dict`` strictly."""
    model.load_state_dict(state_dict, strict=True)
    return model


def make_clips(seed: int = SEED) -> torch.Tensor:
    """Random uint8 clips [B, T, 3, H, W]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (len(EXPRESSIONS), NUM_FRAMES, 3, HEIGHT, WIDTH), dtype=torch.uint8,
                         generator=generator)


def make_batch(clips: torch.Tensor) -> Dict:
    """Data-loader output for ``clips`` [B, T, 3, H, W]: one referred object per clip, a box that moves
    right by 4 pixels a frame (clip 0) or stays (clip 1), and its mask."""
    from mmengine.structures import InstanceData

    from soc_mm.structures import RVOSDataSample
    samples = []
    B, T, _, H, W = clips.shape
    for b, text in enumerate(EXPRESSIONS):
        masks = torch.zeros(1, T, H, W, dtype=torch.bool)
        boxes = []
        for t in range(T):
            x0 = 8 + (4 * t if b == 0 else 0)
            masks[0, t, 16:40, x0:x0 + 20] = True
            boxes.append([(x0 + 10) / W, 28 / H, 20 / W, 24 / H])
        sample = RVOSDataSample(metainfo=dict(
            expression=text, img_shape=(H, W), ori_shape=(H, W), ref_inst_idx=0, video_id=f'v{b}', exp_id='0',
            frame_ids=[f'{t:05d}' for t in range(T)]))
        sample.gt_instances = InstanceData(masks=masks, boxes=torch.tensor([boxes]),
                                           labels=torch.zeros(1, dtype=torch.long),
                                           visible=torch.ones(1, T, dtype=torch.bool))
        samples.append(sample)
    return dict(inputs=list(clips), data_samples=samples)


def no_dropout(model):
    """Every dropout / drop-path probability 0 (the golden-fixture harness's setting)."""
    from soc_mm.testing.dropout import zero_dropout
    return zero_dropout(model)


def run(model, clips: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """-> (losses of the loss mode in train mode, tensors of the tensor mode in eval mode)."""
    no_dropout(model)
    model.train()
    data = model.data_preprocessor(make_batch(clips), training=True)
    losses = {k: v.detach() for k, v in model(**data, mode='loss').items()}
    model.eval()
    data = model.data_preprocessor(make_batch(clips), training=False)
    with torch.no_grad():
        out = model(**data, mode='tensor')
    tensors = {k: out[k] for k in ('hidden_states', 'video_queries', 'fused_sentence_feat', 'cls', 'boxes',
                                   'masks')}
    tensors.update({f'references.{i}': r for i, r in enumerate(out['references'])})
    return losses, tensors


def make_fixture() -> Dict:
    """Random weights of the MeViS-demo model (a superset of the tiny SOC's); run every model of
    :data:`CONFIGS` with them.

    Returns ``dict(clips, weights, <name>=dict(keys, losses, tensors) for each name)``.
    """
    torch.set_num_threads(1)
    clips = make_clips()
    torch.manual_seed(SEED)  # the modules' own initialisation at construction
    weights = random_weights(build_model('mevis'))
    fixture = dict(clips=clips, weights=weights)
    for name in CONFIGS:
        model = build_model(name)
        keys = list(model.state_dict())
        losses, tensors = run(load_weights(model, state_dict_of(weights, keys)), clips)
        fixture[name] = dict(keys=keys, losses=losses, tensors=tensors)
    return fixture


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=DEFAULT_OUT, help='output file (default: %(default)s)')
    args = parser.parse_args(argv)
    fixture = make_fixture()
    torch.save(fixture, args.out)
    print(f'{args.out}: {osp.getsize(args.out) / 1e6:.2f} MB; losses: '
          + ', '.join(f'{n}.{k}={float(v):.4f}' for n in CONFIGS for k, v in fixture[n]['losses'].items()
                      if k in ('loss_cls', 'loss_mask')))


if __name__ == '__main__':
    main()
