"""Benchmark SOC inference: shared path (one backbone pass per clip for all expressions) vs one full
forward per expression, with per-stage times, frames/s, peak memory and FLOPs.

Examples (random weights, Swin-T, 8 frames at 360x640, 4 expressions, 2 CPU threads):
    python tools/analysis_tools/benchmark.py configs/_base_/models/soc_swin-t.py \\
        --cfg-options model.text_encoder.model_path=tests/data/soc_reference/common/text_encoder \\
        model.backbone.init_cfg=None --frames 8 --size 360 640 --expressions 4 --threads 2
    # peak RSS of a 96-frame video read and processed in clips of 8 frames vs one 8-frame clip:
    python tools/analysis_tools/benchmark.py ... --memory-frames 96 --clip-len 8 --skip-timing

Rows of the timing table:
    reference per-expr : K full forwards, one per expression, reference kernels (the official
                         model's computation: mmaction window attention, mmcv's PyTorch MSDA)
    per-expr           : K full forwards with the fused kernels (``test_cfg.fast_kernels``, ``init_model``'s default)
    shared             : ``VideoInference.predict_clip`` (what ``SOC.predict`` and ``inference_rvos``
                         run): backbone/neck once, text-dependent stages batched over the K
                         expressions, fused kernels
Stages: backbone, neck (+ masks, positions), text, fusion+encoder, decoder+VOC, heads (spatial
decoder, class/box/mask heads), post-processing (trajectory choice, upsampling, thresholding).
"""
import argparse
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import torch

STAGES = ('backbone', 'neck', 'text', 'fusion+encoder', 'decoder+VOC', 'heads', 'post-processing')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='SOC inference benchmark (shared vs per-expression path)')
    p.add_argument('config', help='model config file')
    p.add_argument('--checkpoint', default=None, help='checkpoint (default: random init_weights)')
    p.add_argument('--frames', type=int, default=8, help='frames T of the timed clip')
    p.add_argument('--size', type=int, nargs=2, default=(360, 640), metavar=('H', 'W'),
                   help='model input size of the timed clip (no resize is applied)')
    p.add_argument('--expressions', type=int, default=4, help='number of expressions K')
    p.add_argument('--repeat', type=int, default=1, help='timed runs per path (median reported)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--skip-reference', action='store_true',
                   help='do not time the reference-kernel per-expression baseline')
    p.add_argument('--skip-timing', action='store_true', help='only the memory measurement')
    p.add_argument('--no-flops', action='store_true', help='skip the FLOP count (mmengine.analysis)')
    p.add_argument('--memory-frames', type=int, default=0,
                   help='also measure peak RSS of inference_rvos on a synthetic video of this many '
                        'frames vs one clip (separate processes)')
    p.add_argument('--clip-len', type=int, default=8, help='clip length of the memory measurement')
    p.add_argument('--cfg-options', nargs='+', default=[], help='key=value config overrides')
    p.add_argument('--rss-run', nargs=3, metavar=('VIDEO', 'CLIP_LEN', 'K'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def parse_cfg_options(options):
    out = {}
    for opt in options:
        if '=' not in opt:
            raise ValueError(f'--cfg-options entries must be key=value, got {opt!r}')
        key, value = opt.split('=', 1)
        out[key] = None if value == 'None' else (
            int(value) if value.lstrip('-').isdigit() else value)
    return out


def quiet_logs():
    import logging
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    logging.getLogger('transformers').setLevel(logging.ERROR)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------------- stage timer
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


# ---------------------------------------------------------------------- inputs
def synthetic_batch(model, frames, size, num_expr, seed=0):
    """Random uint8 clip [T, 3, H, W] through the data preprocessor + K data samples."""
    from soc_mm.structures import RVOSDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    clip = torch.randint(0, 256, (frames, 3, h, w), dtype=torch.uint8, generator=g)
    words = ['the', 'red', 'car', 'on', 'left', 'person', 'riding', 'a', 'bike', 'dog', 'running', 'white']
    samples = []
    for k in range(num_expr):
        n = 3 + (k * 2) % 6
        expr = ' '.join(words[(k * 5 + i) % len(words)] for i in range(n))
        samples.append(RVOSDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), expression=expr,
                                                    frame_ids=[str(i) for i in range(frames)])))
    data = model.data_preprocessor(dict(inputs=[clip], data_samples=[samples[0]]), False)
    meta = {k: data['data_samples'][0].metainfo[k] for k in ('batch_input_shape', 'pad_shape')}
    for s in samples:
        s.set_metainfo(meta)
    return data['inputs'], samples


def run_per_expression(model, inputs, samples):
    from soc_mm.models.inference import VideoInference
    inference = VideoInference(model)
    out = []
    for s in samples:
        out += inference.predict_clip(inputs, [s], torch.zeros(1, dtype=torch.long, device=inputs.device))
    return out


def run_shared(model, inputs, samples):
    from soc_mm.models.inference import VideoInference
    return VideoInference(model).predict_clip(inputs, samples,
                                              torch.zeros(len(samples), dtype=torch.long, device=inputs.device))


def shared_head_inputs(model, inputs, samples):
    """``head_inputs_dict`` of the shared path: one clip's features repeated for the K expressions."""
    from soc_mm.models.detectors.batch_metainfo import get_texts
    from soc_mm.models.inference import expand_clip_feats
    index = torch.zeros(len(samples), dtype=torch.long, device=inputs.device)
    clip_feats = expand_clip_feats(model.extract_feat(inputs, samples[:1]), index, inputs.shape[1])
    return model.forward_transformer(**clip_feats, **model.extract_text_feat(get_texts(samples)))


@contextmanager
def kernels(model, fast):
    from soc_mm.apis import disable_fast_kernels, enable_fast_kernels
    disable_fast_kernels(model)
    if fast:
        enable_fast_kernels(model)
    try:
        yield
    finally:
        disable_fast_kernels(model)
        enable_fast_kernels(model)


def timed_runs(model, fn, inputs, samples, repeat, timer):
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


def count_flops(model, inputs, samples):
    """FLOPs (mmengine.analysis, multiply-add = 1) of one clip for K expressions, per module."""
    from mmengine.analysis import FlopAnalyzer

    class Shared(torch.nn.Module):
        def __init__(self, soc, k):
            super().__init__()
            self.soc, self.k = soc, k

        def forward(self, x):
            from soc_mm.models.detectors.batch_metainfo import img_shapes_tensor
            head_inputs = shared_head_inputs(self.soc, x, samples[:self.k])
            layer = self.soc.output_layer
            return self.soc.bbox_head.forward_single(
                head_inputs['hidden_states'][layer], head_inputs['references'][layer],
                head_inputs['references'][layer + 1][..., :2], head_inputs['mask_feats'],
                img_shapes_tensor(samples[:self.k], x.device), layer)

    res = {}
    for k in sorted({1, len(samples)}):
        analyzer = FlopAnalyzer(Shared(model, k), (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        with torch.no_grad():
            by_module = analyzer.by_module()
        res[k] = dict(total=analyzer.total(), backbone=by_module.get('soc.backbone', 0),
                      encoder=by_module.get('soc.encoder', 0), decoder=by_module.get('soc.decoder', 0),
                      unsupported=sorted(op for op in analyzer.unsupported_ops()
                                         if any(w in op for w in ('attention', 'grid', 'mm', 'conv'))))
    return res


# ---------------------------------------------------------------------- memory
def write_synthetic_video(path_dir, frames, size):
    """A synthetic video (moving gradient) as mp4 (frame folder of PNGs if mp4 writing fails)."""
    import cv2
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    path = osp.join(path_dir, f'synthetic_{frames}.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 10, (w, h))
    ok = writer.isOpened()
    folder = osp.join(path_dir, f'synthetic_{frames}')
    if not ok:
        os.makedirs(folder, exist_ok=True)
    for t in range(frames):
        img = np.stack([(xx + 5 * t) % 256, (yy + 3 * t) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        if ok:
            writer.write(img)
        else:
            cv2.imwrite(osp.join(folder, f'{t:05d}.png'), img)
    writer.release()
    return path if ok else folder


def rss_run(args):
    """Child process: inference_rvos on a video file, print peak RSS and the time."""
    from soc_mm.apis import inference_rvos, init_model
    video, clip_len, k = args.rss_run[0], int(args.rss_run[1]), int(args.rss_run[2])
    quiet_logs()
    model = init_model(args.config, args.checkpoint, args.device, parse_cfg_options(args.cfg_options))
    exprs = [f'object number {i} on the left' for i in range(k)]
    before = peak_rss_mib()
    t0 = time.perf_counter()
    res = inference_rvos(model, video, exprs, clip_len=clip_len)
    wall = time.perf_counter() - t0
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    print(f'RSS_RESULT frames={res[0].pred_masks.shape[0]} model_rss_mib={before:.1f} '
          f'peak_rss_mib={peak_rss_mib():.1f} cuda_peak_mib={cuda:.1f} seconds={wall:.2f}')


def measure_memory(args):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (args.clip_len, args.memory_frames):
            video = write_synthetic_video(tmp, frames, args.size)
            cmd = [sys.executable, __file__, args.config, '--rss-run', video, str(args.clip_len),
                   str(args.expressions), '--device', args.device]
            if args.checkpoint:
                cmd += ['--checkpoint', args.checkpoint]
            if args.threads:
                cmd += ['--threads', str(args.threads)]
            if args.cfg_options:
                cmd += ['--cfg-options', *args.cfg_options]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith('RSS_RESULT')]
            if out.returncode or not line:
                raise RuntimeError(f'memory run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}')
            vals = dict(kv.split('=') for kv in line[0].split()[1:])
            rows.append((frames, vals))
    return rows


# ---------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    if args.rss_run:
        return rss_run(args)
    from soc_mm.apis import init_model

    print(f'load: {os.getloadavg()} (1/5/15 min), cpus: {os.cpu_count()}, torch threads: '
          f'{torch.get_num_threads()}, device: {args.device}')
    if not args.skip_timing:
        quiet_logs()
        model = init_model(args.config, args.checkpoint, args.device, parse_cfg_options(args.cfg_options))
        inputs, samples = synthetic_batch(model, args.frames, args.size, args.expressions)
        inputs = inputs.to(args.device)
        K, T = args.expressions, args.frames
        timer = StageTimer(model)
        rows = []
        if not args.skip_reference:
            with kernels(model, fast=False):
                rows.append(('reference per-expr',) + timed_runs(model, run_per_expression, inputs, samples,
                                                                 args.repeat, timer))
        rows.append(('per-expr',) + timed_runs(model, run_per_expression, inputs, samples, args.repeat, timer))
        if torch.cuda.is_available() and inputs.is_cuda:
            torch.cuda.reset_peak_memory_stats()
        rows.append(('shared',) + timed_runs(model, run_shared, inputs, samples, args.repeat, timer))
        cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if inputs.is_cuda else None
        timer.remove()

        # numerics: shared vs per-expression (same kernels)
        with torch.no_grad():
            shared = shared_head_inputs(model, inputs, samples)['hidden_states']
            diffs = []
            for k, s in enumerate(samples):
                single = model(inputs, [s], mode='tensor')['hidden_states']
                diffs.append(float((shared[model.output_layer, k] - single[model.output_layer, 0]).abs().max()))

        print(f'\nSOC inference, {T} frames at {args.size[0]}x{args.size[1]}, K = {K} expressions, '
              f'repeat {args.repeat} (median)')
        header = f'| path | total s | frames/s | ' + ' | '.join(STAGES) + ' |'
        print(header)
        print('|' + '---|' * (3 + len(STAGES)))
        for name, wall, stages, _ in rows:
            print(f'| {name} | {wall:.2f} | {T * K / wall:.2f} | ' +
                  ' | '.join(f'{stages[s]:.2f}' for s in STAGES) + ' |')
        walls = {name: wall for name, wall, _, _ in rows}
        print(f'\nframes/s counts frame-expression pairs (T*K per clip).')
        if 'reference per-expr' in walls:
            print(f'speed-up shared vs reference per-expr: {walls["reference per-expr"] / walls["shared"]:.2f}x')
        print(f'speed-up shared vs per-expr (same fused kernels): {walls["per-expr"] / walls["shared"]:.2f}x')
        print(f'max |diff| shared vs per-expr hidden states (head input): {max(diffs):.2e}')
        print(f'peak RSS of this process: {peak_rss_mib():.0f} MiB' +
              (f', CUDA peak (shared): {cuda_peak:.0f} MiB' if cuda_peak is not None else ''))
        if not args.no_flops:
            with kernels(model, fast=False):  # the reference ops are all counted by the analyzer
                fl = count_flops(model, inputs, samples)
            for k, f in fl.items():
                print(f'FLOPs (shared path, one {T}-frame clip, K={k}): total {f["total"] / 1e9:.1f} G, '
                      f'backbone {f["backbone"] / 1e9:.1f} G, encoder {f["encoder"] / 1e9:.1f} G, '
                      f'decoder {f["decoder"] / 1e9:.1f} G; uncounted ops: {", ".join(f["unsupported"]) or "-"}')
        del model
    if args.memory_frames:
        rows = measure_memory(args)
        print(f'\npeak RSS, inference_rvos (K = {args.expressions}) on a {args.size[0]}x{args.size[1]} mp4, '
              f'clip_len {args.clip_len} (separate processes):')
        print('| video frames | peak RSS MiB | after model build MiB | seconds |')
        print('|---|---|---|---|')
        for frames, v in rows:
            print(f'| {frames} | {float(v["peak_rss_mib"]):.0f} | {float(v["model_rss_mib"]):.0f} | '
                  f'{float(v["seconds"]):.1f} |')
        ratio = float(rows[1][1]['peak_rss_mib']) / float(rows[0][1]['peak_rss_mib'])
        print(f'peak RSS ratio {rows[1][0]} / {rows[0][0]} frames: {ratio:.3f}')


if __name__ == '__main__':
    main()
