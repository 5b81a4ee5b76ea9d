"""Compare ``soc_mm``'s SOC with golden tensors of the official model.

A fixture folder (layout documented in ``tests/data/soc_reference/README.md``) holds the
official configuration (``config.json``), inputs, eval/train outputs and losses of the
official model with known weights. :func:`compare_fixture` builds our model from that
configuration (:func:`~soc_mm.official.config.official_model_cfg`, which refuses settings it
cannot reproduce), converts the official weights with our converter
(:func:`~soc_mm.official.checkpoint.convert_official_state_dict`), runs the same forwards,
the loss and the matcher, and reports the max |diff| of every tensor.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.structures import InstanceData
from torch import nn

from soc_mm.registry import MODELS
from soc_mm.structures import RVOSDataSample
from soc_mm.testing.dropout import zero_dropout
from .batch_regroup_soc import BatchRegroupSOC, BatchRegroupSOCPlusPlus
from .checkpoint import convert_official_state_dict
from .config import official_model_cfg
from .loss_names import to_official_loss_name
from .outputs import official_outputs

__all__ = ['Row', 'load_fixture_state_dict', 'fixture_batch', 'zero_dropout', 'build_reference_model',
           'compare_fixture']


@dataclass
class Row:
    """One compared quantity."""
    name: str
    max_abs_diff: float
    tolerance: float
    ok: bool


def _load(path: str):
    return torch.load(path, map_location='cpu', weights_only=True)


def load_fixture_state_dict(fixture_dir: str, config: Dict) -> Dict[str, torch.Tensor]:
    """The variant's official weights (shared state dict + the variant's overrides)."""
    weights = config['weights']
    state_dict = _load(osp.join(fixture_dir, weights['state_dict']))
    for extra in weights.get('state_dict_overrides', []):
        state_dict.update(_load(osp.join(fixture_dir, extra)))
    return state_dict


def fixture_batch(inputs: Dict, with_targets: bool = False) -> Tuple[torch.Tensor, List[RVOSDataSample]]:
    """Official inputs -> (clips [B, T, 3, H, W], data samples).

    ``inputs`` is a fixture's ``inputs.pt``: ``samples`` [T, B, 3, H, W], ``targets`` (list over
    time steps of lists over videos of dicts), ``valid_indices`` (None or [B]), ``text_queries``.
    With ``with_targets`` every sample gets ``gt_instances`` (masks [N, T', h, w], boxes
    [N, T', 4], labels [N], visible [N, T']).
    """
    T, B = inputs['samples'].shape[:2]
    pad_hw = tuple(inputs['samples'].shape[-2:])
    valid = inputs['valid_indices']
    samples = []
    for b in range(B):
        target = inputs['targets'][0][b]
        meta = dict(img_shape=tuple(target['size'].tolist()), ori_shape=tuple(target['orig_size']),
                    expression=inputs['text_queries'][b], batch_input_shape=pad_hw, pad_shape=pad_hw,
                    ref_inst_idx=int(target['referred_instance_idx']))
        if valid is not None:
            meta['valid_frame_idx'] = [int(valid[b]) - b * T]
        sample = RVOSDataSample(metainfo=meta)
        if with_targets:
            steps = [inputs['targets'][t][b] for t in range(len(inputs['targets']))]
            num = steps[0]['masks'].shape[0]
            # SOC++'s MeViS targets carry no labels (its criterion reads them only when num_classes > 1)
            labels = steps[0]['labels'].reshape(-1) if 'labels' in steps[0] else torch.zeros(1, dtype=torch.long)
            masks = torch.stack([s['masks'] for s in steps], 1)
            sample.gt_instances = InstanceData(
                masks=masks, boxes=torch.stack([s['boxes'] for s in steps], 1),
                labels=labels.expand(num) if labels.numel() == 1 else labels,
                visible=masks.flatten(2).any(-1))
        samples.append(sample)
    return inputs['samples'].transpose(0, 1).contiguous(), samples


def build_reference_model(fixture_dir: str, batch_regroup: Optional[bool] = None,
                          **cfg_overrides) -> Tuple[nn.Module, Dict]:
    """Our model for a fixture folder, with the official weights converted by our converter.

    ``batch_regroup``: build :class:`~soc_mm.official.batch_regroup_soc.BatchRegroupSOC` (the official
    VOC batch regrouping) instead of ``SOC``; None = exactly when the official regrouping mixes videos
    (B > 1 and T > 1). ``cfg_overrides`` update the model config (e.g. ``test_cfg``).
    Returns ``(model, config.json contents)``.
    """
    with open(osp.join(fixture_dir, 'config.json'), encoding='utf-8') as f:
        config = json.load(f)
    official = config['official_config']
    inputs = config['input']
    T_out = 1 if inputs['valid_indices'] is not None else inputs['T']
    cfg = official_model_cfg(
        official, osp.normpath(osp.join(fixture_dir, official['text_encoder_type'])),
        referred_only=inputs['mode'] != 'a2d')  # must agree with official dataset_name
    # the official VOC mixes videos when B > 1 and T > 1: reproduce it only here
    if (inputs['B'] > 1 and T_out > 1) if batch_regroup is None else batch_regroup:
        cfg['type'] = {'SOC': BatchRegroupSOC, 'SOCPlusPlus': BatchRegroupSOCPlusPlus}[cfg['type']].__name__
    if cfg['type'] in ('SOCPlusPlus', BatchRegroupSOCPlusPlus.__name__) and inputs['B'] > 1:
        # SOC++'s text-match pairing runs across the batch in the official code
        cfg['voc']['type'] = 'BatchPairingFrameScoredVOC'
    cfg.update(cfg_overrides)
    model = MODELS.build(cfg)
    state_dict = convert_official_state_dict(load_fixture_state_dict(fixture_dir, config))
    model.load_state_dict(state_dict, strict=True)
    return model, config


def _row(name: str, ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4) -> Row:
    if ours.shape != ref.shape:
        return Row(f'{name} (shape {tuple(ours.shape)} vs {tuple(ref.shape)})', float('inf'), 0.0, False)
    ours, ref = ours.detach().double().cpu(), ref.detach().double()  # golden tensors are on the CPU
    diff = (ours - ref).abs().max().item() if ref.numel() else 0.0
    tol = rel * max(1.0, ref.abs().max().item() if ref.numel() else 0.0)
    return Row(name, diff, tol, diff <= tol)


def _compare_outputs(prefix: str, ours: Dict, ref: Dict) -> List[Row]:
    rows = [_row(f'{prefix}.{k}', ours[k], ref[k])
            for k in ('pred_masks', 'pred_cls', 'pred_boxes', 'pred_logit', 'text_sentence_feature')]
    if len(ours['aux_outputs']) != len(ref['aux_outputs']):
        rows.append(Row(f'{prefix}.aux_outputs (count)', float('inf'), 0.0, False))
    for i, (a, r) in enumerate(zip(ours['aux_outputs'], ref['aux_outputs'])):
        rows += _compare_outputs(f'{prefix}.aux_outputs[{i}]', dict(a, aux_outputs=[]),
                                 dict(r, aux_outputs=[]))
    return rows


def _loss_rows(model: nn.Module, losses: Dict[str, torch.Tensor], ref: Dict) -> List[Row]:
    """Weighted losses and the loss weights against the official ``loss_dict``/``weight_dict``.

    The official criterion skips a loss whose coefficient is 0: it is expected to be 0 here.
    """
    rows = []
    for name, value in sorted(losses.items()):
        official = to_official_loss_name(name)
        weight = float(getattr(model.bbox_head, name.rpartition('.')[2]).loss_weight)
        ref_weight = float(ref['weight_dict'].get(official, 0.0))
        ok = weight == ref_weight
        rows.append(Row(f'loss_weight.{name} ({official}: {ref_weight:g})', abs(weight - ref_weight), 0.0, ok))
        if official in ref['loss_dict']:
            expected = float(ref['loss_dict'][official]) * ref_weight
        elif ref_weight == 0:
            expected = 0.0
        else:
            rows.append(Row(f'loss.{name} ({official} missing from the reference)', float('inf'), 0.0, False))
            continue
        diff = abs(float(value.detach()) - expected)
        tol = 1e-4 * abs(expected)
        rows.append(Row(f'loss.{name} ({official})', diff, tol, diff <= tol))
    missing = sorted(set(ref['loss_dict']) - {to_official_loss_name(n) for n in losses})
    rows += [Row(f'loss {name} (official only, not computed here)', float('inf'), 0.0, False) for name in missing]
    return rows


class _InternalRecorder:
    """Forward hooks on our model that record its internal tensors in the official layouts of a fixture's
    ``intermediates_eval.pt`` (only what the fixture holds is compared; see :func:`_intermediate_rows`)."""

    def __init__(self, model: nn.Module, num_videos: int) -> None:
        self.model, self.B, self.out, self.handles = model, num_videos, {}, []
        self._hook(model.decoder, self._decoder)
        self.handles.append(model.voc.register_forward_pre_hook(self._voc_input))
        self._hook(model.voc, self._voc)
        if hasattr(model, 'proxy_fusion'):  # SOC++
            self.out['proxies'], self.out['v2p_out'] = [], []
            self._hook(model.proxy_fusion, self._proxies)
            self._hook(model.lvf, lambda m, a, o: self.out.__setitem__('lvf_words', o.transpose(0, 1)))
            self._hook(model.voc.visibility_scorer, lambda m, a, o: self.out.__setitem__('frame_score_vis', o))
            self._hook(model.voc.difference_scorer, lambda m, a, o: self.out.__setitem__('frame_score_diff', o))
            self._hook(model.query_fusion, self._query_fusion)
            if len(model.voc.encoder_layers):
                self._hook(model.voc.encoder_layers[-1], self._voc_encoder_out)
            scores = model.voc.frame_scores  # a method: wrapped on the instance until remove()

            def frame_scores(*args, **kwargs):
                self.out['frame_score'] = scores(*args, **kwargs)
                return self.out['frame_score']

            model.voc.frame_scores = frame_scores

    def _hook(self, module: nn.Module, fn) -> None:
        self.handles.append(module.register_forward_hook(fn))

    def _decoder(self, module, args, output) -> None:
        hidden_states, references = output
        self.out['hs'], self.out['inter_references'] = hidden_states, references

    def _voc_input(self, module, args) -> None:
        frames = args[0]  # [N, T, q, C] as the cluster decoder reads them (after any regrouping)
        self.out['voc_encoder_in'] = frames.permute(1, 2, 0, 3)
        self.frames_shape = frames.shape

    def _voc(self, module, args, output) -> None:
        self.out['voc_hs'] = output.view(-1, self.B, *output.shape[1:])

    def _proxies(self, module, args, output) -> None:
        self.out['proxies'].append((args[0] + output).transpose(0, 1))
        self.out['v2p_out'].append(output.transpose(0, 1))

    def _query_fusion(self, module, args, output) -> None:
        self.out['bmrw'] = args[1]
        self.out['query_fusion'] = output.transpose(0, 1)

    def _voc_encoder_out(self, module, args, output) -> None:
        N, T, q, C = self.frames_shape
        self.out['voc_encoder_out'] = output.view(N, T, q, C).permute(1, 2, 0, 3)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.model.voc.__dict__.pop('frame_scores', None)


def _intermediate_rows(model: nn.Module, clips: torch.Tensor, samples: List[RVOSDataSample],
                       ref: Dict) -> List[Row]:
    """Eval-forward internals against the fixture's ``intermediates_eval.pt``: the deformable decoder's
    frame queries and references, the cluster decoder's output and, for SOC++, every recorded stage (proxies
    per level, updated words, frame scores, cluster-decoder encoder, random walk, query fusion)."""
    recorder = _InternalRecorder(model, clips.shape[0])
    try:
        with torch.no_grad():
            model.forward_head_inputs(clips, samples)
    finally:
        recorder.remove()
    got, rows = recorder.out, []
    dt = ref.get('deformable_transformer', {})
    if 'hs' in dt:
        rows.append(_row('internal.deformable_transformer.hs', got['hs'], dt['hs']))
    if 'inter_references' in dt:
        rows.append(_row('internal.deformable_transformer.inter_references', got['inter_references'],
                         dt['inter_references']))
    if 'voc_hs' in ref.get('voc', {}):
        rows.append(_row('internal.voc.voc_hs', got['voc_hs'], ref['voc']['voc_hs']))
    socpp = ref.get('socpp', {})
    if socpp and 'proxies' not in got:
        rows.append(Row('internal.socpp (a SOC++ fixture, a model without proxies)', float('inf'), 0.0, False))
        return rows
    for key in ('proxies', 'v2p_out'):
        if key in socpp:
            if len(got[key]) != len(socpp[key]):
                rows.append(Row(f'internal.socpp.{key} (count {len(got[key])} vs {len(socpp[key])})',
                                float('inf'), 0.0, False))
            rows += [_row(f'internal.socpp.{key}[{i}]', a, b) for i, (a, b) in enumerate(zip(got[key], socpp[key]))]
    for key in ('lvf_words', 'bmrw', 'query_fusion', 'voc_encoder_in', 'voc_encoder_out'):
        if key in socpp:
            rows.append(_row(f'internal.socpp.{key}', got[key], socpp[key]))
    for key in ('frame_score_vis', 'frame_score_diff', 'frame_score'):  # ours [N, T, 1], official [T, N, 1]
        if key in socpp:
            rows.append(_row(f'internal.socpp.{key}', got[key].transpose(0, 1), socpp[key]))
    return rows


def _to_device(clips: torch.Tensor, samples: List[RVOSDataSample],
               device: str) -> Tuple[torch.Tensor, List[RVOSDataSample]]:
    return clips.to(device), [sample.to(device) for sample in samples]


def compare_fixture(fixture_dir: str, fast_kernels: bool = True, device: str = 'cpu') -> List[Row]:
    """Run eval and train forwards, the loss and the matcher with the fused (``fast_kernels``) or the
    reference kernels; one :class:`Row` per compared quantity.

    ``device``: where the model and the inputs run (``'cuda'``: the deformable attention is then
    mmcv's CUDA kernel); the results are compared with the CPU golden tensors under the same
    tolerances. The caller decides the float precision (on CUDA, TF32 convolutions and matmuls
    would exceed the 1e-4 tolerance: ``tools/analysis_tools/compare_with_reference.py`` turns
    TF32 off).
    """
    model, _ = build_reference_model(fixture_dir, fast_kernels=fast_kernels)
    model.to(device)
    inputs = _load(osp.join(fixture_dir, 'inputs.pt'))
    clips, samples = _to_device(*fixture_batch(inputs), device)
    rows = []
    model.eval()
    with torch.no_grad():
        rows += _compare_outputs('eval', official_outputs(model, clips, samples),
                                 _load(osp.join(fixture_dir, 'outputs_eval.pt')))
    intermediates = osp.join(fixture_dir, 'intermediates_eval.pt')
    if osp.isfile(intermediates):
        rows += _intermediate_rows(model, clips, samples, _load(intermediates))
    zero_dropout(model).train()
    with torch.no_grad():
        rows += _compare_outputs('train', official_outputs(model, clips, samples),
                                 _load(osp.join(fixture_dir, 'outputs_train.pt')))

    clips, samples = _to_device(*fixture_batch(inputs, with_targets=True), device)
    ref = _load(osp.join(fixture_dir, 'losses_train.pt'))
    rows += _loss_rows(model, model(clips, samples, mode='loss'), ref)
    with torch.no_grad():
        feats = model(clips, samples, mode='tensor')
        levels = model.bbox_head.match(feats['cls'], feats['boxes'], feats['masks'], feats['video_queries'],
                                       feats['fused_sentence_feat'], samples)
    num_levels = len(levels)
    for call, indices in zip(ref['matcher_call_order'], ref['matcher_indices']):
        level = num_levels - 1 if call == 'final' else int(call.split('_')[1])
        same = len(levels[level]) == len(indices) and all(
            torch.equal(q.cpu(), rq) and torch.equal(g.cpu(), rg)
            for (q, g), (rq, rg) in zip(levels[level], indices))
        rows.append(Row(f'matcher_indices.{call}', 0.0 if same else float('inf'), 0.0, same))
    return rows
