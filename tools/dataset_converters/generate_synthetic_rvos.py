"""Generate a synthetic RVOS dataset (moving coloured shapes + referring expressions) in a real on-disk format.

    python tools/dataset_converters/generate_synthetic_rvos.py ref_youtube_vos data/synthetic_refytvos \
        --num-train 200 --num-valid 20 --num-test 2 --num-frames 8 --size 96 96 --seed 0
    python tools/dataset_converters/generate_synthetic_rvos.py a2d_sentences data/synthetic_a2d
    python tools/dataset_converters/generate_synthetic_rvos.py jhmdb_sentences data/synthetic_jhmdb
    python tools/dataset_converters/generate_synthetic_rvos.py ref_davis17 data/synthetic_refdavis
    python tools/dataset_converters/generate_synthetic_rvos.py refcoco data/synthetic_coco
    python tools/dataset_converters/generate_synthetic_rvos.py mevis data/synthetic_mevis \
        --num-train 6 --num-valid-u 2 --num-valid 2 --num-frames 12 --size 64 96

Each writes ``synthetic_manifest.json`` (objects, expressions) next to the data. See
``soc_mm.datasets.synthetic`` for the formats.
"""
import argparse
import time

from soc_mm.datasets import synthetic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate a synthetic RVOS dataset in a real format')
    parser.add_argument('format', choices=['ref_youtube_vos', 'ref_davis17', 'a2d_sentences', 'jhmdb_sentences',
                                           'refcoco', 'mevis'])
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
    # every split the format's loader reads must have at least one video (MeViS splits may be empty; a
    # Ref-YTVOS test split of 0 videos is written as no test file, which the loader accepts)
    minimum = 0 if args.format == 'mevis' else 1
    for option, value in (('--num-train', args.num_train), ('--num-valid', args.num_valid),
                          ('--num-valid-u', args.num_valid_u)):
        if value is not None and value < minimum:
            parser.error(f'{option} {value}: must be >= {minimum} for {args.format} (its loader refuses an '
                         'empty split)')
    if args.num_frames is not None and args.num_frames < 1:
        parser.error(f'--num-frames {args.num_frames}: must be >= 1')
    if args.num_test < 0:
        parser.error(f'--num-test {args.num_test}: must be >= 0')
    if args.size is not None and min(args.size) < 1:
        parser.error(f'--size {args.size[0]} {args.size[1]}: both must be >= 1')
    return args


def _count(value, default: int) -> int:
    """The count given on the command line (0 included), else the format's default."""
    return default if value is None else value


def main(argv=None):
    args = parse_args(argv)
    opt = {k: v for k, v in dict(num_frames=args.num_frames, size=tuple(args.size) if args.size else None).items()
           if v is not None}
    t0 = time.perf_counter()
    if args.format == 'ref_youtube_vos':
        manifest = synthetic.generate_ref_youtube_vos(
            args.out_dir, num_train=_count(args.num_train, 8), num_valid=_count(args.num_valid, 3),
            num_test=args.num_test,
            num_objects=tuple(args.num_objects), valid_with_gt=not args.no_valid_gt,
            exit_prob=args.exit_prob or 0.0, train_same_color_prob=args.train_same_color_prob, seed=args.seed, **opt)
        counts = {s: len(manifest[s]) for s in ('train', 'valid', 'test')}
    elif args.format == 'ref_davis17':
        manifest = synthetic.generate_ref_davis(args.out_dir, num_valid=_count(args.num_valid, 2),
                                                num_objects=tuple(args.num_objects), seed=args.seed, **opt)
        counts = {'valid': len(manifest['valid'])}
    elif args.format == 'a2d_sentences':
        manifest = synthetic.generate_a2d_sentences(args.out_dir, num_train=_count(args.num_train, 3),
                                                    num_test=_count(args.num_valid, 2),
                                                    num_objects=tuple(args.num_objects), seed=args.seed, **opt)
        counts = {'videos': len(manifest['videos'])}
    elif args.format == 'jhmdb_sentences':
        manifest = synthetic.generate_jhmdb_sentences(args.out_dir, num_videos=_count(args.num_valid, 3),
                                                      seed=args.seed, **opt)
        counts = {'videos': len(manifest['videos'])}
    elif args.format == 'mevis':
        if args.exit_prob is not None:
            opt['exit_prob'] = args.exit_prob
        if args.train_motion_repeats is not None:
            opt['train_motion_repeats'] = args.train_motion_repeats
        counts = dict(num_train=args.num_train, num_valid_u=args.num_valid_u, num_valid=args.num_valid)
        opt.update({k: v for k, v in counts.items() if v is not None})  # 0 is allowed (an empty split)
        manifest = synthetic.generate_mevis(args.out_dir, seed=args.seed, **opt)
        counts = {s: len(manifest[s]) for s in ('train', 'valid_u', 'valid')}
    else:
        opt.pop('num_frames', None)
        manifest = synthetic.generate_refcoco(
            args.out_dir, num_images=dict(train=_count(args.num_train, 3), val=_count(args.num_valid, 2)),
            num_objects=tuple(args.num_objects), seed=args.seed, **opt)
        counts = {'images': len(manifest['images'])}
    print(f'wrote synthetic {args.format} to {args.out_dir} ({counts}) in {time.perf_counter() - t0:.1f} s')


if __name__ == '__main__':
    main()
