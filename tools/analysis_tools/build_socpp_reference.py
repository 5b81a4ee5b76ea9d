#!/usr/bin/env python
"""Build the SOC++ golden-tensor fixtures (``tests/data/socpp_reference``) from the official code.

The official SOC++ code (github yongliu20/MRVS_SOC) is imported unchanged from ``$SOC_REF_DIR`` (an
extracted copy of that repository) by the reference-runner scripts ``run_reference.py`` /
``soc_ref_lib.py`` / ``soc_ref_shims.py`` (folder given by ``--harness``), which also build the SOC
fixtures in ``tests/data/soc_reference``. This script reuses their ``build_common``,
``build_variant`` and ``write_manifest`` and adds what only SOC++ has:

* variants missing from the runner's table (10 frames at VOC window 0, MeViS union targets,
  66 frames, trainable text encoder, 7 proxies / 6 queries): a copy of its table plus
  configuration overrides, a target builder and extra weights, applied around ``build_variant``;
* SOC++ intermediates recorded with forward hooks (key ``socpp`` of ``intermediates_eval.pt``):
  the proxies after each level, the proxy-updated words, the cluster decoder's frame scores and
  encoder input/output, the random-walk (BMRW) output and the query-fusion output (the cluster
  decoder's output is the runner's ``voc.voc_hs``);
* the per-chunk deformable-transformer outputs concatenated when the video has more than 64
  frames (the official forward runs the transformer once per 64-frame chunk);
* for the trainable-text-encoder variant, the gradients of the total weighted loss with respect
  to the text-encoder parameters.

Run it with the Python environment of the official code (torch, ``transformers<5``, tokenizers,
einops, scipy, pycocotools); with one thread (the default) a rebuild is bitwise identical::

    SOC_REF_DIR=/path/to/MRVS_SOC python tools/analysis_tools/build_socpp_reference.py \\
        --harness /path/to/reference_runner --out tests/data/socpp_reference
    python /path/to/reference_runner/run_reference.py verify tests/data/socpp_reference OTHER_BUILD
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import sys
import time

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# variants (names follow tests/data/soc_reference: <data>_b<B>_t<T>_nc<num_classes>_w<VOC window>)
# ---------------------------------------------------------------------------------------------

P7Q6_PERTURB_SEED = 9  # torch.Generator seed of the 0.02*N(0,1) shift of the p7q6-only parameters
# smaller frames for the B=2 variants that pin a setting rather than the data path (size budget);
# sample 1 is still zero-padded at the bottom/right
SMALL_SIZES = ((32, 48), (24, 40))
SMALL_ORIG_SIZES = ((48, 72), (36, 60))

EXTRA_VARIANTS = {
    # B=1, 10 frames (T > 8: temporal window padding/shift of the video-swin backbone)
    'ytvos_b1_t10_nc1_w0': dict(mode='ytvos', T=10, B=1, num_classes=1, voc_window_size=0, invisible=None,
                                intermediates='light', sizes=((48, 64),), orig_sizes=((72, 96),)),
    # MeViS: one expression referring to two objects; targets = their union (official MEVISDataset)
    'mevis_b1_t4_union_w0': dict(mode='ytvos', T=4, B=1, num_classes=1, voc_window_size=0, invisible=None,
                                 intermediates='light', sizes=((48, 64),), orig_sizes=((72, 96),),
                                 targets='mevis_union', config_overrides={'dataset_name': 'mevis'}),
    # 66 frames: the official forward splits the deformable transformer into 64 + 2 frames
    'ytvos_b1_t66_nc1_w0': dict(mode='ytvos', T=66, B=1, num_classes=1, voc_window_size=0, invisible=None,
                                intermediates='light', sizes=((24, 32),), orig_sizes=((36, 48),)),
    # trainable text encoder (its pooler stays frozen in SOC++)
    'ytvos_b2_t3_nc1_w0_textft': dict(mode='ytvos', T=3, B=2, num_classes=1, voc_window_size=0, invisible=None,
                                      intermediates='light', sizes=SMALL_SIZES, orig_sizes=SMALL_ORIG_SIZES,
                                      config_overrides={'freeze_text_encoder': False}, text_encoder_grads=True),
    # 7 proxies, 6 object queries (deformable decoder and cluster decoder)
    'ytvos_b2_t3_nc1_w0_p7q6': dict(mode='ytvos', T=3, B=2, num_classes=1, voc_window_size=0, invisible=None,
                                    intermediates='light', sizes=SMALL_SIZES, orig_sizes=SMALL_ORIG_SIZES,
                                    weights='p7q6',
                                    config_overrides={'num_proxy_query': 7,
                                                      'DeformTransformer': {'num_queries': 6},
                                                      'VOC': {'num_queries': 6, 'num_frame_queries': 6}}),
}

MEVIS_OBJECTS = {
    # annotation value (= MeViS obj_id + 1): (name, frames where it is present)
    1: ('A, referred: ellipse moving right', (0, 1)),
    2: ('distractor, not referred: small static rectangle', (0, 1, 2, 3)),
    3: ('B, referred: rectangle moving left, drawn over A', (1, 2)),
}
MEVIS_REFERRED_OBJ_IDS = (0, 2)  # the expression's "obj_id" list (annotation values 1 and 3)


def variant_table(R):
    """The runner's VOC-window-0 variants (SOC++'s windowed cluster decoder cannot run) + ours."""
    table = {k: copy.deepcopy(v) for k, v in R.VARIANTS.items() if v['voc_window_size'] == 0}
    table.update(copy.deepcopy(EXTRA_VARIANTS))
    return table


# ---------------------------------------------------------------------------------------------
# runner import
# ---------------------------------------------------------------------------------------------

def load_runner(harness: str):
    """Import run_reference / soc_ref_lib from ``harness``; check that SOC_REF_DIR holds SOC++."""
    if not osp.isfile(osp.join(harness, 'run_reference.py')):
        sys.exit(f'--harness {harness}: no run_reference.py there (expected the reference-runner folder '
                 'holding run_reference.py, soc_ref_lib.py and soc_ref_shims.py)')
    ref = os.environ.get('SOC_REF_DIR')
    if not ref or not osp.isfile(osp.join(ref, 'models', 'voc.py')):
        sys.exit(f'SOC_REF_DIR={ref!r}: expected an extracted copy of github yongliu20/MRVS_SOC '
                 '(models/voc.py missing)')
    sys.path.insert(0, osp.abspath(harness))
    import run_reference as R  # noqa: E402
    L = R._lib()
    if not L.is_socpp():
        sys.exit(f'SOC_REF_DIR={ref}: models/voc.py has no NewVOC; this is SOC, not SOC++ (MRVS_SOC)')
    return R, L


def deep_update(d: dict, overrides: dict) -> dict:
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            deep_update(d[k], v)
        else:
            d[k] = copy.deepcopy(v)
    return d


@contextlib.contextmanager
def patched(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


# ---------------------------------------------------------------------------------------------
# MeViS union targets (what datasets/mevis/mevis.py MEVISDataset.__getitem__ + its transforms give)
# ---------------------------------------------------------------------------------------------

def _inclusive_xyxy(mask: torch.Tensor) -> torch.Tensor:
    """[x1, y1, x2, y2] float32 of a [H, W] mask, x2/y2 the last occupied column/row (no +1);
    [0, 0, 0, 0] for an empty mask (the dataset's convention for an absent object)."""
    if not mask.any():
        return torch.zeros(4)
    rows = torch.where(mask.any(1))[0]
    cols = torch.where(mask.any(0))[0]
    return torch.tensor([cols[0], rows[0], cols[-1], rows[-1]]).to(torch.float)


def mevis_label_maps(T: int, H0: int, W0: int) -> torch.Tensor:
    """uint8 [T, H0, W0] annotation maps (0 background, MEVIS_OBJECTS values), objects disjoint as in
    an indexed PNG; object 3 is drawn last and hides the part of object 1 it covers (frame 1)."""
    from soc_ref_lib import _ellipse, _rect
    maps = torch.zeros(T, H0, W0, dtype=torch.uint8)
    for t in range(T):
        lab = maps[t]
        if t in MEVIS_OBJECTS[2][1]:
            lab[_rect(H0, W0, int(H0 * 0.75), int(W0 * 0.05), int(H0 * 0.95), int(W0 * 0.2))] = 2
        if t in MEVIS_OBJECTS[1][1]:
            lab[_ellipse(H0, W0, cy=H0 * 0.45, cx=W0 * (0.3 + 0.1 * t), ry=H0 * 0.2, rx=W0 * 0.14)] = 1
        if t in MEVIS_OBJECTS[3][1]:
            lab[_rect(H0, W0, int(H0 * 0.25), int(W0 * (0.55 - 0.05 * t)), int(H0 * 0.7),
                      int(W0 * (0.8 - 0.05 * t)))] = 3
    return maps


def mevis_union_targets(sizes, orig_sizes, T=4, **_):
    """Training targets of one MeViS sample whose expression refers to two objects, in the official
    format (list over time of list over batch of dicts, as they reach the model after the trainer's
    to_device). Per frame, as MEVISDataset.__getitem__ builds them at the original size:

    * ``masks`` = union of the referred objects' masks, bool [1, H0, W0];
    * ``boxes`` = [min over referred objects of (x1, y1), max of (x2, y2)] where an absent object
      contributes its all-zero box, so one absent object pulls the top-left corner to (0, 0);
    * ``is_ref_inst_visible`` = the union mask is non-empty (at the original size);
    * ``referred_instance_idx`` = 0, ``iscrowd`` = zeros(number of objects annotated in the window),
      ``orig_size`` = (H0, W0); **no** ``labels`` (commented out in the official dataset).

    then the official transforms (no flip / colour augmentation): resize to (h, w) — masks nearest
    and ``> 0.5``, boxes times (w/W0, h/H0, w/W0, h/H0), ``size`` = (h, w) — and Normalize — boxes to
    cx, cy, w, h divided by (w, h, w, h)."""
    from misc import box_xyxy_to_cxcywh
    if len(sizes) != 1:
        raise ValueError(f'mevis_union_targets: batch of 1 expected (MeViS trains with bs 1), got {len(sizes)}')
    (h, w), (H0, W0) = sizes[0], orig_sizes[0]
    maps = mevis_label_maps(T, H0, W0)
    all_object_indices = sorted(set(maps.unique().tolist()) - {0})
    ref_idx = [all_object_indices.index(o + 1) for o in MEVIS_REFERRED_OBJ_IDS]
    ratio_w, ratio_h = float(w) / float(W0), float(h) / float(H0)
    targets = []
    for t in range(T):
        frame_masks = torch.stack([(maps[t] == o).to(torch.uint8) for o in all_object_indices])  # [O, H0, W0]
        frame_boxes = torch.stack([_inclusive_xyxy(m.bool()) for m in frame_masks])             # [O, 4]
        frame_boxes[:, 0::2].clamp_(min=0, max=W0)
        frame_boxes[:, 1::2].clamp_(min=0, max=H0)
        union = torch.stack([frame_masks[i] for i in ref_idx]).any(dim=0).unsqueeze(0)         # [1, H0, W0]
        ref_boxes = torch.stack([frame_boxes[i] for i in ref_idx])
        box = torch.cat([ref_boxes[:, :2].min(dim=0, keepdim=True).values,
                         ref_boxes[:, 2:].max(dim=0, keepdim=True).values], dim=-1)            # [1, 4] xyxy
        visible = union.any()
        box = box * torch.as_tensor([ratio_w, ratio_h, ratio_w, ratio_h])
        masks = F.interpolate(union[:, None].float(), (h, w), mode='nearest')[:, 0] > 0.5
        box = box_xyxy_to_cxcywh(box) / torch.tensor([w, h, w, h], dtype=torch.float32)
        targets.append([{
            'masks': masks,                                     # [1, h, w] bool
            'boxes': box,                                       # [1, 4] cxcywh / (w, h, w, h)
            'referred_instance_idx': torch.tensor(0),
            'is_ref_inst_visible': visible,                     # 0-d bool
            'orig_size': [H0, W0],                              # torch.Size -> list by to_device
            'size': torch.tensor([h, w]),
            'iscrowd': torch.zeros(len(frame_masks)),
        }])
    return targets


# ---------------------------------------------------------------------------------------------
# SOC++ intermediates (forward hooks)
# ---------------------------------------------------------------------------------------------

class SocppRecorder:
    """Records SOC++-only tensors of one forward.

    Forward hooks on ``v2p``, ``lvf``, ``voc.score_embd``, ``voc.diff_embd``, ``query_fusion`` and
    ``transformer``; ``voc.encode_frame_query`` and ``BMRW`` are plain methods, so their instance
    attributes are wrapped (the wrapper only records and calls the original)."""

    def __init__(self, model):
        self.d = {'v2p_in': [], 'v2p_out': [], 'transformer_calls': []}
        self.handles = []
        self._wrapped = []
        c = self._clone
        self.handles.append(model.v2p.register_forward_hook(self._v2p, with_kwargs=True))
        self.handles.append(model.lvf.register_forward_hook(lambda m, i, o: self.d.__setitem__('lvf_words', c(o))))
        voc = model.voc
        self.handles.append(voc.score_embd.register_forward_hook(
            lambda m, i, o: self.d.__setitem__('frame_score_vis', c(o))))
        self.handles.append(voc.diff_embd.register_forward_hook(
            lambda m, i, o: self.d.__setitem__('frame_score_diff', c(o))))
        self.handles.append(model.query_fusion.register_forward_hook(
            lambda m, i, o: self.d.__setitem__('query_fusion', c(o))))
        self.handles.append(model.transformer.register_forward_hook(self._transformer))
        self._wrap(voc, 'encode_frame_query', self._encode)
        self._wrap(model, 'BMRW', self._bmrw)

    @staticmethod
    def _clone(x):
        return x.detach().clone()

    def _wrap(self, obj, name, recorder):
        orig = getattr(obj, name)

        def wrapper(*args, **kwargs):
            out = orig(*args, **kwargs)
            recorder(args, kwargs, out)
            return out
        setattr(obj, name, wrapper)
        self._wrapped.append((obj, name))

    def _v2p(self, m, args, kwargs, out):
        self.d['v2p_in'].append(self._clone(kwargs['tgt']))
        self.d['v2p_out'].append(self._clone(out))

    def _transformer(self, m, i, o):
        hs, memory, init_ref, inter_ref = o[:4]
        self.d['transformer_calls'].append({'hs': self._clone(hs), 'init_reference': self._clone(init_ref),
                                            'inter_references': self._clone(inter_ref)})

    def _encode(self, args, kwargs, out):
        self.d['voc_encoder_in'] = self._clone(args[0])
        self.d['frame_score'] = self._clone(args[2])
        self.d['voc_encoder_out'] = self._clone(out)

    def _bmrw(self, args, kwargs, out):
        self.d['bmrw'] = self._clone(out)

    def remove(self):
        for h in self.handles:
            h.remove()
        for obj, name in self._wrapped:
            delattr(obj, name)  # back to the class method

    def result(self, full: bool) -> dict:
        """The tensors documented in tests/data/socpp_reference/README.md ('light' drops the per-token
        encoder/fusion tensors)."""
        d = self.d
        # proxies after each level, exactly as the official forward forms them (proxy += v2p(proxy))
        proxies = [p_in + p_out for p_in, p_out in zip(d['v2p_in'], d['v2p_out'])]
        out = {
            'proxy_init': d['v2p_in'][0],
            'proxies': proxies,
            'lvf_words': d['lvf_words'],
            'frame_score_vis': d['frame_score_vis'],
            'frame_score_diff': d['frame_score_diff'],
            'frame_score': d['frame_score'],
            'bmrw': d['bmrw'],
            'transformer_call_rows': [int(c['hs'].shape[1]) for c in d['transformer_calls']],
        }
        if full:
            out.update(v2p_out=d['v2p_out'], voc_encoder_in=d['voc_encoder_in'],
                       voc_encoder_out=d['voc_encoder_out'], query_fusion=d['query_fusion'])
        return out

    def transformer_concat(self) -> dict:
        """The per-chunk transformer outputs concatenated as the official forward concatenates them."""
        calls = self.d['transformer_calls']
        return {'hs': torch.cat([c['hs'] for c in calls], dim=1),
                'init_reference': torch.cat([c['init_reference'] for c in calls], dim=0),
                'inter_references': torch.cat([c['inter_references'] for c in calls], dim=1)}


# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------

def build_p7q6_overrides(R, L, out, text_dir, sd1):
    """Weights of the 7-proxy / 6-query model: every tensor whose shape matches the base model comes
    from ``official_state_dict.pt``; the others (query/proxy embeddings, the cluster decoder's
    per-query tables and its score heads, whose width is input_dim * num_queries) get their own
    official init (seed 0), shifted by 0.02*N(0,1) (generator seed 9), saved to
    ``common/official_state_dict_p7q6_overrides.pt``."""
    spec = EXTRA_VARIANTS['ytvos_b2_t3_nc1_w0_p7q6']
    cfg = deep_update(L.tiny_config(text_dir, num_classes=1, voc_window_size=0), spec['config_overrides'])
    model, _, _ = L.build_official(cfg, seed=R.MODEL_SEED)
    sd = model.state_dict()
    keys = [k for k, v in sd.items() if k not in sd1 or sd1[k].shape != v.shape]
    init_stats = {k: v for k, v in L.tensor_stats(sd).items() if k in keys}
    L.perturb_parameters_(model, seed=P7Q6_PERTURB_SEED, include=lambda n: n in keys)
    overrides = {k: v.detach().clone() for k, v in model.state_dict().items() if k in keys}
    common = osp.join(out, 'common')
    R._save(overrides, osp.join(common, 'official_state_dict_p7q6_overrides.pt'))
    with open(osp.join(common, 'official_init_stats_p7q6_overrides.json'), 'w') as f:
        json.dump({'note': 'statistics of the UNPERTURBED official random init (seed %d) of the tensors of the '
                           'p7q6 model whose shape differs from the base model' % R.MODEL_SEED,
                   'tensors': init_stats}, f, indent=1)
    return overrides


def load_fixture_model(L, vdir):
    """The official model rebuilt from the fixture's own files (config.json + weights), with another
    seed on purpose: everything must come from the files."""
    meta = json.load(open(osp.join(vdir, 'config.json')))
    cfg = copy.deepcopy(meta['official_config'])
    cfg['text_encoder_type'] = osp.normpath(osp.join(vdir, cfg['text_encoder_type']))
    sw = cfg.get('backbone_swin_config')
    if sw:
        for k in ('patch_size', 'window_size'):
            sw[k] = tuple(sw[k])
    model, criterion, _ = L.build_official(cfg, seed=123)
    sd = torch.load(osp.normpath(osp.join(vdir, meta['weights']['state_dict'])), weights_only=True)
    for o in meta['weights']['state_dict_overrides']:
        sd.update(torch.load(osp.normpath(osp.join(vdir, o)), weights_only=True))
    model.load_state_dict(sd, strict=True)
    return meta, model, criterion


def _equal_tree(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal_tree(x, y) for x, y in zip(a, b))
    return a == b


def finish_variant(R, L, out, name, spec):
    """SOC++ additions to a variant folder written by the runner's build_variant."""
    vdir = osp.join(out, name)
    cfg_path = osp.join(vdir, 'config.json')
    meta = json.load(open(cfg_path))
    if spec.get('weights') == 'p7q6':
        meta['weights']['state_dict_overrides'] = ['../common/official_state_dict_p7q6_overrides.pt']
        meta['weights']['how'] += ('; the tensors whose shape differs from the base model (num_queries 6, '
                                   'num_proxy_query 7) come from official_state_dict_p7q6_overrides.pt: their '
                                   'official init (seed %d) + 0.02*N(0,1) (generator seed %d)'
                                   % (R.MODEL_SEED, P7Q6_PERTURB_SEED))
    if spec.get('targets') == 'mevis_union':
        meta['input']['targets'] = {
            'builder': 'MeViS union (datasets/mevis/mevis.py MEVISDataset.__getitem__, then resize + Normalize)',
            'objects_in_window': {str(k): {'what': v[0], 'present_in_frames': list(v[1])}
                                  for k, v in MEVIS_OBJECTS.items()},
            'expression_obj_id': list(MEVIS_REFERRED_OBJ_IDS),
            'annotation_values_referred': [o + 1 for o in MEVIS_REFERRED_OBJ_IDS],
            'augmentations': 'none (horizontal flip and colour jitter off)',
        }
        targets = torch.load(osp.join(vdir, 'inputs.pt'), weights_only=True)['targets']
        meta['input']['referred_invisible_frames'] = {
            '0': [t for t, row in enumerate(targets) if not bool(row[0]['is_ref_inst_visible'])]}
    with open(cfg_path, 'w') as f:  # fix the weights entry before rebuilding the model from the folder
        json.dump(meta, f, indent=1)

    meta, model, criterion = load_fixture_model(L, vdir)
    inputs = torch.load(osp.join(vdir, 'inputs.pt'), weights_only=True)
    ref_eval = torch.load(osp.join(vdir, 'outputs_eval.pt'), weights_only=True)
    ref_train = torch.load(osp.join(vdir, 'outputs_train.pt'), weights_only=True)
    rec = SocppRecorder(model)
    try:
        out_eval, _ = L.run_forward(model, inputs['samples'], inputs['samples_mask'], inputs['text_queries'],
                                    inputs['eval_targets'], valid_indices=inputs['valid_indices'], train=False)
    finally:
        rec.remove()
    if not _equal_tree(L.clone_tree(out_eval), ref_eval):
        raise RuntimeError(f'{name}: the model rebuilt from config.json does not reproduce outputs_eval.pt')

    inter_path = osp.join(vdir, 'intermediates_eval.pt')
    inter = torch.load(inter_path, weights_only=True)
    inter['socpp'] = rec.result(full=spec.get('intermediates') == 'full')
    n_calls = len(rec.d['transformer_calls'])
    if n_calls > 1:
        # the runner's hook kept the last chunk only: store the whole video, as the forward concatenates it
        dt = inter['deformable_transformer']
        dt.update(rec.transformer_concat())
        for k in ('memory', 'inter_samples'):
            dt.pop(k, None)
    R._save(inter, inter_path)

    requires_grad = {n: p.requires_grad for n, p in model.text_encoder.named_parameters()}
    socpp = {
        'use_proxymmf': meta['official_config'].get('use_proxymmf'),
        'num_proxy_query': meta['official_config'].get('num_proxy_query'),
        'deformable_transformer_call_rows': inter['socpp']['transformer_call_rows'],
        'eval_outputs_equal_train_outputs': _equal_tree(ref_eval, ref_train),
        'freeze_text_encoder': meta['official_config']['freeze_text_encoder'],
        'text_encoder_requires_grad': {
            'trainable': sorted(k for k, v in requires_grad.items() if v),
            'frozen': sorted(k for k, v in requires_grad.items() if not v)},
    }
    if spec.get('text_encoder_grads'):
        socpp['text_encoder_grads'] = 'losses_train.pt["text_encoder_grads"]'
        losses_path = osp.join(vdir, 'losses_train.pt')
        losses = torch.load(losses_path, weights_only=True)
        model.zero_grad(set_to_none=True)
        out_train, _ = L.run_forward(model, inputs['samples'], inputs['samples_mask'], inputs['text_queries'],
                                     inputs['targets'], valid_indices=inputs['valid_indices'], train=True)
        loss_dict = criterion(out_train, inputs['targets'])
        wd = criterion.weight_dict
        total = sum(loss_dict[k] * wd[k] for k in loss_dict if k in wd)
        if not torch.equal(total.detach(), losses['total_weighted_loss']):
            raise RuntimeError(f'{name}: rebuilt model does not reproduce total_weighted_loss')
        total.backward()
        losses['text_encoder_grads'] = {n: p.grad.detach().clone() for n, p in model.text_encoder.named_parameters()
                                        if p.grad is not None}
        losses['text_encoder_params_without_grad'] = [n for n, p in model.text_encoder.named_parameters()
                                                      if p.grad is None]
        R._save(losses, losses_path)
    meta['socpp'] = socpp
    with open(cfg_path, 'w') as f:
        json.dump(meta, f, indent=1)
    return socpp


def chunking_check(L, out, name):
    """Diagnostic (printed, not stored): the 64-frame chunks vs one transformer call on all frames."""
    vdir = osp.join(out, name)
    _, model, _ = load_fixture_model(L, vdir)
    inputs = torch.load(osp.join(vdir, 'inputs.pt'), weights_only=True)
    inter = torch.load(osp.join(vdir, 'intermediates_eval.pt'), weights_only=True)
    captured = {}
    orig = model.transformer.forward

    def whole(srcs, tgt, masks, poses, query_embeds):  # called once per chunk; capture the chunk inputs
        captured.setdefault('calls', []).append((srcs, tgt, masks, poses, query_embeds))
        return orig(srcs, tgt, masks, poses, query_embeds)
    model.transformer.forward = whole
    L.run_forward(model, inputs['samples'], inputs['samples_mask'], inputs['text_queries'], inputs['eval_targets'])
    calls = captured['calls']
    srcs = [torch.cat([c[0][lvl] for c in calls]) for lvl in range(len(calls[0][0]))]
    masks = [torch.cat([c[2][lvl] for c in calls]) for lvl in range(len(calls[0][2]))]
    poses = [torch.cat([c[3][lvl] for c in calls]) for lvl in range(len(calls[0][3]))]
    tgt = torch.cat([c[1] for c in calls], dim=1)
    with torch.no_grad():
        hs = orig(srcs, tgt, masks, poses, calls[0][4])[0]
    d = (hs - inter['deformable_transformer']['hs']).abs().max().item()
    print(f'[socpp] {name}: chunks {[c[1].shape[1] for c in calls]}; one call on all {tgt.shape[1]} frames '
          f'gives hs within max|diff| {d:.3g} of the chunked hs')
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--harness', required=True,
                    help='folder holding run_reference.py, soc_ref_lib.py and soc_ref_shims.py')
    ap.add_argument('--out', required=True, help='output folder (e.g. tests/data/socpp_reference)')
    ap.add_argument('--variants', nargs='*', help='subset of variants (default: all)')
    ap.add_argument('--threads', type=int, default=1,
                    help='torch intra-op threads (default 1; bitwise reproducibility needs a fixed count)')
    args = ap.parse_args(argv)

    R, L = load_runner(args.harness)
    variants = variant_table(R)
    names = args.variants or list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        sys.exit(f'--variants: unknown {unknown}; known: {list(variants)}')
    L.set_deterministic(args.threads)
    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    text_dir, text_info, sd1, sd65 = R.build_common(out)
    p7q6 = build_p7q6_overrides(R, L, out, text_dir, sd1)
    print(f'[socpp] common done ({time.time() - t0:.1f}s)')
    base_tiny_config = L.tiny_config
    for name in names:
        t1 = time.time()
        spec = variants[name]
        overrides = spec.get('config_overrides', {})

        def tiny_config(*a, **k):
            return deep_update(base_tiny_config(*a, **k), overrides)

        weights = dict(sd1, **p7q6) if spec.get('weights') == 'p7q6' else sd1
        # build_variant takes its configuration from soc_ref_lib.tiny_config and its Ref-YouTube-VOS
        # targets from soc_ref_lib.ytvos_targets: swap those for this variant only
        with contextlib.ExitStack() as stack:
            stack.enter_context(patched(L, 'tiny_config', tiny_config))
            if spec.get('targets') == 'mevis_union':
                stack.enter_context(patched(L, 'ytvos_targets', mevis_union_targets))
            info = R.build_variant(out, name, spec, text_dir, text_info, weights, sd65)
        socpp = finish_variant(R, L, out, name, spec)
        print(f'[socpp] {name}: total weighted loss {info["loss_total"]:.6f}; transformer calls '
              f'{socpp["deformable_transformer_call_rows"]}; eval==train {socpp["eval_outputs_equal_train_outputs"]} '
              f'({time.time() - t1:.1f}s)')
        if len(socpp['deformable_transformer_call_rows']) > 1:
            chunking_check(L, out, name)
    rows = R.write_manifest(out)
    print(f'[socpp] {len(rows)} files, {sum(r["bytes"] for r in rows) / 1e6:.2f} MB, {time.time() - t0:.1f}s')


if __name__ == '__main__':
    main()
