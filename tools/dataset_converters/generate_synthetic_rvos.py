"""Generate a synthetic RVOS dataset (moving coloured shapes + referring expressions) in a real on-disk format.

    python tools/dataset_converters/generate_synthetic_rvos.py ref_youtube_vos data/synthetic_refytvos \
        --num-train 200 --num-valid 20 --num-test 2 --num-frames 8 --size 96 96 --seed 0
    python tools/dataset_converters/generate_synthetic_rvos.py a2d_sentences data/synthetic_a2d
    python tools/dataset_converters/generate_synthetic_rvos.py jhmdb_sentences data/synthetic_jhmdb
    python tools/dataset_converters/generate_synthetic_rvos.py ref_davis17 data/synthetic_refdavis
    python tools/dataset_converters/generate_synthetic_rvos.py refcoco data/synthetic_coco
    python tools/dataset_converters/generate_synthetic_rvos.py mevis data/synthetic_mevis \
        --num-train 6 --num-valid-u 2 --num-valid 2 --num-frames 12 --size 64 96
    python tools/dataset_converters/generate_synthetic_rvos.py mevis_v2 data/synthetic_mevis_v2   (same options)
    python tools/dataset_converters/generate_synthetic_rvos.py long_rvos data/synthetic_long_rvos \
        --num-train 4 --num-valid 2 --num-test 1 --num-frames 360 --size 48 64
    python tools/dataset_converters/generate_synthetic_rvos.py revos data/synthetic_revos \
        --num-train 6 --num-valid 3 --num-frames 10 --size 64 96

Each writes ``synthetic_manifest.json`` (objects, expressions) next to the data. See
``soc_mm.datasets.synthetic`` for the formats.
"""
import argparse
import time

from soc_mm.datasets import synthetic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate a synthetic RVOS dataset in a real format')
    parser.add_argument('format', choices=synthetic.FORMATS)
    parser.add_argument('out_dir', help='dataset root to write')
    parser.add_argument('--num-train', type=int, default=None, help='train videos / images')
    parser.add_argument('--num-valid', type=int, default=None, help='valid (test for A2D/JHMDB) videos / images')
    parser.add_argument('--num-valid-u', type=int, default=None, help='MeViS: valid_u videos (with masks)')
    parser.add_argument('--num-test', type=int, default=1, help='Ref-YTVOS competition test videos (removed '
                        'from the valid split by the dataset)')
    parser.add_argument('--num-frames', type=int, default=None, help='frames per video')
    parser.add_argument('--size', type=int, nargs=2, default=None, metavar=('H', 'W'), help='frame size')
    parser.add_argument('--num-objects', type=int, nargs=2, default=[2, 3], metavar=('MIN', 'MAX'))
    parser.add_argument('--exit-prob', type=float, default=None,
                        help='Ref-YTVOS (default 0) / MeViS (default 0.2): probability that an object leaves the '
                        'video half-way')
    parser.add_argument('--train-motion-repeats', type=int, default=None,
                        help='MeViS: write each train expression that refers to objects by their motion this many '
                        'times (default 1), so that training sees them more often')
    parser.add_argument('--train-same-color-prob', type=float, default=None,
                        help='Ref-YTVOS: probability that two objects of a train video share a colour (only '
                        'the shape tells them apart); default: uniform draw, as the held-out videos')
    parser.add_argument('--no-valid-gt', action='store_true', help='Ref-YTVOS: no valid masks (as the real '
                        'release); held-out J&F then cannot be computed')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:  # the counts the format's loaders refuse: a usage error before anything is written
        synthetic.check_generate_options(args.format, num_train=args.num_train, num_valid=args.num_valid,
                                         num_valid_u=args.num_valid_u, num_test=args.num_test,
                                         num_frames=args.num_frames, size=args.size)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    _, counts = synthetic.generate(
        args.format, args.out_dir, num_train=args.num_train, num_valid=args.num_valid, num_valid_u=args.num_valid_u,
        num_test=args.num_test, num_frames=args.num_frames, size=args.size, num_objects=args.num_objects,
        exit_prob=args.exit_prob, train_motion_repeats=args.train_motion_repeats,
        train_same_color_prob=args.train_same_color_prob, valid_with_gt=not args.no_valid_gt, seed=args.seed)
    print(f'wrote synthetic {args.format} to {args.out_dir} ({counts}) in {time.perf_counter() - t0:.1f} s')


if __name__ == '__main__':
    main()
