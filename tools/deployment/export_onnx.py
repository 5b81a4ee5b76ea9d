"""Export a SOC model to ONNX (one clip of T frames at H x W against N expressions), and check it.

    python tools/deployment/export_onnx.py CONFIG CKPT OUT.onnx [--num-frames 8] [--size 360 640] [--verify]

The graph takes the normalised clip, its unpadded size, and the token ids and attention mask of the
expressions (tokenisation stays in Python); it gives the class and mask logits of the output decoder
layer (``soc_mm.apis.deployment``: inputs, outputs, what is dynamic and why). N (expressions) and S
(tokens) are dynamic axes; T, H and W are fixed at export (frames smaller than H x W after the test
resize are padded). Run the graph with ONNX Runtime through ``RVOSInferencer(backend='onnxruntime')``
or ``tools/demo/video_demo.py --backend onnxruntime``; ``tools/analysis_tools/benchmark_onnx.py``
compares it with eager PyTorch. ``--verify`` runs the graph once in ONNX Runtime on random inputs and
prints its largest difference from eager PyTorch (relative to the largest |value| of each output).
"""
import argparse
import os.path as osp
import sys
import time

from soc_mm.utils.cli import parse_cfg_options


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export SOC to ONNX')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help="checkpoint file ('none': random weights, for tests and timings)")
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--num-frames', type=int, default=8, help='frames T of a clip (fixed in the graph)')
    parser.add_argument('--size', type=int, nargs=2, default=(360, 640), metavar=('H', 'W'),
                        help='padded frame size of the graph (the test pipeline resizes to at most 360 x 640)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (>= 16: GridSample)')
    parser.add_argument('--verify', action='store_true', help='compare ONNX Runtime with eager PyTorch once')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='key=value config overrides')
    args = parser.parse_args(argv)
    if not args.out.endswith('.onnx'):
        parser.error(f'out must end with .onnx, got {args.out!r}')
    if not osp.isfile(args.config):
        parser.error(f'config file not found: {args.config}')
    if args.checkpoint != 'none' and not osp.isfile(args.checkpoint):
        parser.error(f"checkpoint file not found: {args.checkpoint} (use 'none' for random weights)")
    return args


def main(argv=None):
    args = parse_args(argv)
    from soc_mm.apis import init_model
    from soc_mm.apis.deployment import export_onnx, verify_onnx
    options = parse_cfg_options(args.cfg_options) if args.cfg_options else None
    model = init_model(args.config, None if args.checkpoint == 'none' else args.checkpoint, device='cpu',
                       cfg_options=options)
    start = time.time()
    meta = export_onnx(model, args.out, num_frames=args.num_frames, size=args.size, opset_version=args.opset)
    print(f'exported {args.out} in {time.time() - start:.1f} s: clips of {meta["num_frames"]} frames at '
          f'{meta["height"]}x{meta["width"]}, decoder layer {meta["output_layer"]}, dynamic: expressions, tokens')
    if args.verify:
        diffs = verify_onnx(model, args.out)
        print('largest difference ONNX Runtime vs eager PyTorch (relative to max |value|): ' +
              ', '.join(f'{name} {value:.2e}' for name, value in diffs.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
