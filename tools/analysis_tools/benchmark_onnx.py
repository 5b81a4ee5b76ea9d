"""ONNX Runtime vs eager PyTorch on the same clip, side by side in one run: the largest output
difference and the seconds per forward (one clip of T frames against K expressions, the exported
graph's function: text encoder, backbone, transformer, VOC and the output layer's heads).

    python tools/analysis_tools/benchmark_onnx.py configs/_base_/models/soc_swin-t.py \\
        --base-text-encoder tests/data/soc_reference/common/text_encoder \\
        --cfg-options model.backbone.init_cfg=None --frames 8 --size 360 640 --threads 2

Timed, alternating round by round so that the machine's drift affects all alike: eager PyTorch with
the default (fused) kernels, eager PyTorch with the kernels that are exported (reference window
attention, mmcv's pure-PyTorch deformable attention), and ONNX Runtime (CPU execution provider). The
graph is exported first (``soc_mm.apis.deployment.export_onnx``) into a temporary folder unless
``--onnx`` names one. ``--base-text-encoder TOKENIZER_DIR``: a RoBERTa-base-sized text encoder with
random weights and that folder's tokenizer (no weights can be downloaded here), as benchmark.py.
"""
import argparse
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from soc_mm.utils.cli import parse_cfg_options


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='SOC: ONNX Runtime vs eager PyTorch (difference and speed)')
    p.add_argument('config', help='model config file')
    p.add_argument('--checkpoint', default=None, help='checkpoint (default: random init_weights)')
    p.add_argument('--onnx', default=None, help='an exported graph of this model (default: export one)')
    p.add_argument('--frames', type=int, default=8, help='frames T of the clip')
    p.add_argument('--size', type=int, nargs=2, default=(360, 640), metavar=('H', 'W'), help='clip size')
    p.add_argument('--expressions', type=int, default=1, help='number of expressions K')
    p.add_argument('--threads', type=int, default=2, help='threads of PyTorch and of ONNX Runtime')
    p.add_argument('--rounds', type=int, default=3, help='timed forwards per path (median reported)')
    p.add_argument('--base-text-encoder', default=None, metavar='TOKENIZER_DIR',
                   help='RoBERTa-base-sized random text encoder with this tokenizer')
    p.add_argument('--cfg-options', nargs='+', default=[], help='key=value config overrides')
    return p.parse_args(argv)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                            cwd=osp.dirname(osp.abspath(__file__))).stdout.strip() or 'unknown'  # the code timed
    import onnxruntime as ort
    from soc_mm.apis import init_model
    from soc_mm.apis.deployment import (INPUT_NAMES, OUTPUT_NAMES, eager_outputs, example_inputs, export_onnx,
                                        relative_difference)
    from soc_mm.testing import synthetic_expressions
    from soc_mm.testing.benchmark import quiet_logs, write_base_text_encoder
    torch.set_num_threads(args.threads)
    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        options = parse_cfg_options(args.cfg_options) if args.cfg_options else {}
        if args.base_text_encoder:
            options['model.text_encoder.model_path'] = write_base_text_encoder(args.base_text_encoder,
                                                                               osp.join(tmp, 'roberta_base'))
        model = init_model(args.config, args.checkpoint, device='cpu', cfg_options=options)
        path = args.onnx or osp.join(tmp, 'soc.onnx')
        if not args.onnx:
            start = time.perf_counter()
            export_onnx(model, path, num_frames=args.frames, size=args.size)
            print(f'export: {time.perf_counter() - start:.1f} s, {osp.getsize(path) / 2**20:.0f} MB')
        inputs = example_inputs(model, args.frames, args.size, synthetic_expressions(args.expressions))
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = args.threads
        session_options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, session_options, providers=['CPUExecutionProvider'])
        feed = {name: x.numpy() for name, x in zip(INPUT_NAMES, inputs)}
        paths = {'eager PyTorch, default kernels': lambda: eager_outputs(model, inputs, 'default'),
                 'eager PyTorch, exported kernels': lambda: eager_outputs(model, inputs, 'export'),
                 'ONNX Runtime (CPU)': lambda: session.run(list(OUTPUT_NAMES), feed)}
        outputs = {name: fn() for name, fn in paths.items()}  # warm-up, and the outputs compared
        times = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, fn in paths.items():
                times[name].append(timed(fn))
    print(f'config {args.config}, clip {args.frames}x{args.size[0]}x{args.size[1]}, {args.expressions} '
          f'expression(s), {args.threads} threads, torch {torch.__version__}, onnxruntime {ort.__version__}, '
          f'commit {commit}')
    ort_outputs = outputs['ONNX Runtime (CPU)']
    for name in ('eager PyTorch, default kernels', 'eager PyTorch, exported kernels'):
        diffs = [relative_difference(ref, out) for ref, out in zip(outputs[name], ort_outputs)]
        print(f'largest |ONNX Runtime - {name}| / max |value|: ' +
              ', '.join(f'{n} {d:.2e}' for n, d in zip(OUTPUT_NAMES, diffs)))
    baseline = statistics.median(times['eager PyTorch, default kernels'])
    print(f'{"path":<34} {"s / forward (median)":>22} {"vs default eager":>17}')
    for name, values in times.items():
        median = statistics.median(values)
        print(f'{name:<34} {median:>22.3f} {baseline / median:>16.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
