"""Look at dataset samples after the pipeline: the clip the model gets, every ground-truth instance
(the referred one in the first colour, with its expression) and the metainfo.

    python tools/analysis_tools/browse_dataset.py CONFIG [--split train|val|test] \
        [--output-dir DIR] [--max-samples N] [--video] [--not-show] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar, mkdir_or_exist

from soc_mm.registry import DATASETS, VISUALIZERS, register_all_modules
from soc_mm.utils.cli import add_cfg_options_argument, merge_cfg_options
from soc_mm.visualization import RVOSVisualizer, write_video
from soc_mm.visualization.browse import browse_sample


def parse_args():
    parser = argparse.ArgumentParser(description='Browse an RVOS dataset after its pipeline')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                        help='which dataloader of the config to browse')
    parser.add_argument('--output-dir', default=None, help='save the pictures (or videos) here')
    parser.add_argument('--max-samples', type=int, default=20, help='browse at most this many samples')
    parser.add_argument('--video', action='store_true', help='save videos (.mp4) instead of frame strips')
    parser.add_argument('--not-show', action='store_true', help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2, help='seconds per shown sample')
    add_cfg_options_argument(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'soc_mm'))
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        raise ValueError(f'{args.config} has no {args.split}_dataloader')
    dataset = DATASETS.build(loader.dataset)
    vis_cfg = cfg.get('visualizer') or dict(type='RVOSVisualizer')
    vis_cfg = dict(vis_cfg, name='browse_dataset')
    vis = VISUALIZERS.build(vis_cfg) if vis_cfg.get('type') == 'RVOSVisualizer' else RVOSVisualizer(name='browse')
    if args.output_dir:
        mkdir_or_exist(args.output_dir)
    num = min(args.max_samples, len(dataset))
    progress = ProgressBar(num)
    for i in range(num):
        item = dataset[i]
        frames = browse_sample(vis, item)
        meta = item['data_samples'].metainfo
        name = f"{i:04d}_{meta.get('video_id', '')}_{meta.get('exp_id', '')}".replace('/', '_')
        if args.output_dir:
            if args.video:
                write_video(osp.join(args.output_dir, name + '.mp4'), frames, fps=5)
            else:
                vis.add_datasample(name, frames, None, out_file=osp.join(args.output_dir, name + '.jpg'))
        if not args.not_show:
            vis.show(vis.tile(frames), win_name=name, wait_time=args.show_interval)
        progress.update()
    print(f'\nbrowsed {num} of {len(dataset)} samples' + (f', saved to {args.output_dir}' if args.output_dir else ''))


if __name__ == '__main__':
    main()
