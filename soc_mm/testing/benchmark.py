"""Building blocks of ``tools/analysis_tools/benchmark.py``: per-stage wall times of a SOC model
(``StageTimer``), the per-expression and shared inference paths, FLOPs per stage (``mmengine.analysis``),
the GEMM peak of this machine, training steps with a config's optimiser wrapper, and a RoBERTa-base-sized
random text encoder."""
import time
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import torch

from .dropout import zero_dropout

#: the stages ``StageTimer`` and ``stage_flops`` report
STAGES = ('backbone', 'neck', 'text', 'fusion+encoder', 'decoder+VOC', 'heads', 'post-processing')


class StageTimer:
    """Accumulates wall time of the model's stage methods (wrapped on the instance)."""

    def __init__(self, model):
        self.model = model
        self.times = OrderedDict((s, 0.0) for s in STAGES)
        self._wrapped = []
        m = model
        self._wrap(m, 'backbone', 'backbone')
        self._wrap(m, 'extract_text_feat', 'text')
        self._wrap(m, 'neck', 'neck')
        self._wrap(m, 'fuse', 'fusion+encoder')
        self._wrap(m, 'forward_encoder', 'fusion+encoder')
        self._wrap(m, 'forward_decoder', 'decoder+VOC')
        self._wrap(m, 'forward_cluster', 'decoder+VOC')
        self._wrap(m, 'spatial_decoder', 'heads')
        self._wrap(m.bbox_head, 'forward_single', 'heads')
        self._wrap(m.bbox_head, 'predict_by_feat', 'post-processing')

    def _wrap(self, obj, name, stage):
        fn = getattr(obj, name)
        sync = self._sync

        def timed(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            self.times[stage] += time.perf_counter() - t0
            return out

        if isinstance(obj, torch.nn.Module) and name in obj._modules:
            # sub-module: time it with hooks (modules cannot be replaced by functions)
            starts = []

            def pre_hook(*_):
                sync()
                starts.append(time.perf_counter())

            def post_hook(*_):
                sync()
                self.times[stage] += time.perf_counter() - starts.pop()

            h1, h2 = fn.register_forward_pre_hook(pre_hook), fn.register_forward_hook(post_hook)
            self._wrapped.append(('hook', (h1, h2)))
        else:
            setattr(obj, name, timed)
            self._wrapped.append(('attr', (obj, name)))

    def _sync(self):
        if torch.cuda.is_available() and next(self.model.parameters()).is_cuda:
            torch.cuda.synchronize()

    def reset(self):
        for k in self.times:
            self.times[k] = 0.0

    def remove(self):
        for kind, item in self._wrapped:
            if kind == 'hook':
                for h in item:
                    h.remove()
            else:
                delattr(*item)


def quiet_logs() -> None:
    """MMEngine's current logger at WARNING (not the per-parameter init table), transformers' at ERROR."""
    import logging
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    logging.getLogger('transformers').setLevel(logging.ERROR)


def run_per_expression(model, inputs, samples):
    """One ``VideoInference.predict_clip`` per expression sample (the per-expression baseline)."""
    from soc_mm.models.inference import VideoInference
    inference = VideoInference(model)
    out = []
    for s in samples:
        out += inference.predict_clip(inputs, [s], torch.zeros(1, dtype=torch.long, device=inputs.device))
    return out


def shared_head_inputs(model, inputs, samples):
    """``head_inputs_dict`` of the shared path: one clip's features repeated for the K expressions."""
    from soc_mm.structures.batch_metainfo import get_texts
    from soc_mm.models.inference import expand_clip_feats
    index = torch.zeros(len(samples), dtype=torch.long, device=inputs.device)
    clip_feats = expand_clip_feats(model.extract_feat(inputs, samples[:1]), index, inputs.shape[1])
    return model.forward_transformer(**clip_feats, **model.extract_text_feat(get_texts(samples)))


@contextmanager
def kernels(model, fast: bool):
    """Run the block with the fused (``fast``) or the reference kernels; the fused ones afterwards."""
    from soc_mm.apis import disable_fast_kernels, enable_fast_kernels
    disable_fast_kernels(model)
    if fast:
        enable_fast_kernels(model)
    try:
        yield
    finally:
        disable_fast_kernels(model)
        enable_fast_kernels(model)


def timed_runs(model, fn, inputs, samples, repeat: int, timer: StageTimer):
    """``fn(model, inputs, samples)`` ``repeat`` times without gradients -> (median wall seconds, the
    ``timer``'s stage times of that run, its outputs)."""
    walls, stage_runs, outs = [], [], None
    for _ in range(repeat):
        timer.reset()
        if inputs.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            outs = fn(model, inputs, samples)
        if inputs.is_cuda:
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
        stage_runs.append(dict(timer.times))
    i = int(np.argsort(walls)[len(walls) // 2])
    return walls[i], stage_runs[i], outs


def write_base_text_encoder(tokenizer_dir: str, out_dir: str) -> str:
    """A RoBERTa-base-sized text encoder (random weights, seed 0) with ``tokenizer_dir``'s tokenizer,
    as the official full-size timing builds it (no weights can be downloaded here)."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast
    RobertaTokenizerFast.from_pretrained(tokenizer_dir).save_pretrained(out_dir)
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                               layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
                               eos_token_id=2)).save_pretrained(out_dir)
    return out_dir


def gemm_peak_gflops(dtype=torch.float32, n=2048, repeat=5) -> float:
    """Best GFLOP/s (2 FLOPs per multiply-add) of an n x n matrix product at the current threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = min(wall_time(lambda: torch.mm(a, b)) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def wall_time(fn) -> float:
    """Seconds one call of ``fn()`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stage_flops(model, inputs, samples) -> dict:
    """FLOPs (2 per multiply-add, mmengine.analysis, reference kernels) of each timed stage for one
    clip and one expression."""
    from mmengine.analysis import FlopAnalyzer
    from soc_mm.structures.batch_metainfo import img_shapes_tensor

    class Forward(torch.nn.Module):
        def __init__(self, soc):
            super().__init__()
            self.soc = soc

        def forward(self, x):
            head_inputs = shared_head_inputs(self.soc, x, samples[:1])
            layer = self.soc.output_layer
            return self.soc.bbox_head.forward_single(
                head_inputs['hidden_states'][layer], head_inputs['references'][layer],
                head_inputs['references'][layer + 1][..., :2], head_inputs['mask_feats'],
                img_shapes_tensor(samples[:1], x.device), layer)

    with kernels(model, fast=False):
        analyzer = FlopAnalyzer(Forward(model), (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        with torch.no_grad():
            by_module = analyzer.by_module()
    get = lambda *names: 2 * sum(by_module.get(f'soc.{n}', 0) for n in names)  # noqa: E731
    # every sub-module that computes, in one stage; SOC++'s own (absent from SOC: 0): the proxies'
    # attention (proxy_fusion) and the query fusion
    return OrderedDict([('backbone', get('backbone')), ('neck', get('neck')), ('text', get('text_encoder')),
                        ('fusion+encoder', get('vlf', 'lvf', 'proxy_fusion', 'encoder')),
                        ('decoder+VOC', get('reference_points_fc', 'decoder', 'voc', 'query_fusion')),
                        ('heads', get('spatial_decoder', 'bbox_head'))])


def time_train_steps(model, inputs, samples, steps: int, optim_wrapper_cfg: dict) -> float:
    """Median seconds of ``steps`` training steps after one warm-up: forward, loss, then
    ``OptimWrapper.update_params`` (backward, gradient clipping, optimiser step, zero_grad) with the
    optimiser wrapper ``optim_wrapper_cfg`` (a config's ``optim_wrapper``)."""
    from mmengine.optim import build_optim_wrapper
    model.train()
    optim_wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = model.parse_losses(model(inputs, samples, mode='loss'))
        optim_wrapper.update_params(loss)
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def build_for_training(cfg_model: dict, fast: bool = True):
    """``cfg_model`` built with (``fast``) or without the fused kernels, ``init_weights`` after
    ``torch.manual_seed(0)``, dropout 0 (as the official harness's timed training step)."""
    from mmengine.registry import init_default_scope
    from soc_mm.registry import MODELS
    init_default_scope('soc_mm')
    cfg_model = dict(cfg_model, fast_kernels=fast)
    torch.manual_seed(0)
    model = MODELS.build(cfg_model)
    model.init_weights()
    return zero_dropout(model)  # as the official harness's timed training step


def run_schedules(model, inputs, samples, schedules, repeat):
    """The K-expression shared path with ``expressions_per_batch`` = each schedule -> {schedule: s}."""
    from soc_mm.models.inference import VideoInference
    index = torch.zeros(len(samples), dtype=torch.long, device=inputs.device)
    out = {}
    for per_batch in schedules:
        inference = VideoInference(model, expressions_per_batch=per_batch)
        walls = []
        for _ in range(repeat):
            with torch.no_grad():
                walls.append(wall_time(lambda: inference.predict_clip(inputs, samples, index)))
        out[per_batch] = float(np.median(walls))
    return out
