"""The synthetic Ref-YouTube-VOS demo (``make demo``, ``tools/demo/run_demo.py``): J&F of the trained
tiny SOC on held-out videos, with their own expressions and with expressions shuffled between videos,
the results table and pictures of a few held-out clips."""
import os
import os.path as osp
import re
from typing import List, Sequence

import numpy as np

from soc_mm.datasets.synthetic import make_shuffled_expressions_root
from .demo_runner import DemoRunner, build_test_dataset, load_trained_model, read_metrics, step

#: held-out J&F at least, J&F with shuffled expressions at most
TARGET_JF, TARGET_SHUFFLED = 0.85, 0.50


def evaluate_heldout(runner: DemoRunner, config: str, checkpoint: str, overrides: List[str], data_root: str,
                     shuffled_root: str, test_dir: str, seed: int) -> List[dict]:
    """Steps 4 and 5: ``tools/test.py`` (``RVOSJFMetric``) on the held-out videos, then on a copy whose
    expressions come from other videos (``make_shuffled_expressions_root``, ``seed``).

    Returns one row per evaluation: ``name``, ``target``, ``num`` (expressions), ``J&F``, ``J``, ``F``.
    """
    step('4/6 J&F on the held-out videos')
    rows = []
    for name, root, target in (('held-out', data_root, f'>= {TARGET_JF:.2f}'),
                               ('held-out, expressions shuffled between videos', shuffled_root,
                                f'<= {TARGET_SHUFFLED:.2f}')):
        if root == shuffled_root:
            step('5/6 the same checkpoint with the expressions shuffled between held-out videos')
            make_shuffled_expressions_root(data_root, shuffled_root, 'ref_youtube_vos', seed=seed)
        out = osp.join(test_dir, 'shuffled' if root == shuffled_root else 'heldout')
        log = osp.join(runner.work_dir, f'test_{osp.basename(out)}.log')
        runner.run_tool('test', [config, checkpoint], ['--work-dir', out, '--cfg-options', *overrides,
                                                       f'test_dataloader.dataset.data_root={root}/'],
                        log, show=lambda line: 'RVOSJFMetric' in line)
        metrics = read_metrics(out)
        with open(log) as f:
            num = re.findall(r'RVOSJFMetric: (\d+) expressions', f.read())
        rows.append(dict(name=name, target=target, num=int(num[-1]) if num else -1,
                         **{k: metrics[f'rvos/{k}'] for k in ('J&F', 'J', 'F')}))
    return rows


def results_table(rows: List[dict], train_info: dict) -> str:
    """The markdown table of ``evaluate_heldout``'s rows and a line on the training run."""
    lines = ['| evaluation (held-out synthetic videos) | expressions | J&F | J | F | target |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['name']} | {r['num']} | {r['J&F']:.3f} | {r['J']:.3f} | {r['F']:.3f} | {r['target']} |")
    speed = f"{train_info['it_per_s']:.2f} it/s" if train_info.get('it_per_s') else 'n/a'
    procs = train_info.get('procs', 1)
    lines += ['', f"Training: {train_info['max_iters']} iterations of {procs} process(es) x batch 1 (4 frames, "
              f"96x96) in {train_info['train_s'] / 60:.1f} min wall time incl. start-up ({speed}), "
              f"{train_info['threads']} torch thread(s) per process, load average before/after "
              f"{train_info['load_before']:.1f}/{train_info['load_after']:.1f} on {os.cpu_count()} cores."]
    return '\n'.join(lines)


def verdict(rows: List[dict]):
    """(held-out target met, shuffled target met, the sentence saying so)."""
    ok_jf, ok_shuffled = rows[0]['J&F'] >= TARGET_JF, rows[1]['J&F'] <= TARGET_SHUFFLED
    text = (f"held-out J&F {'meets' if ok_jf else 'MISSES'} the target (>= {TARGET_JF}); shuffled-text J&F "
            f"{'meets' if ok_shuffled else 'MISSES'} the target (<= {TARGET_SHUFFLED}).")
    return ok_jf, ok_shuffled, text


# ------------------------------------------------------------------ pictures
def predict_clips(cfg_path: str, overrides: Sequence[str], checkpoint: str, num_videos: int) -> List[dict]:
    """Predictions of the first ``num_videos`` held-out videos, every expression of each.

    Returns dicts with ``video_id``, ``exp_id``, ``expression``, ``frames`` (list of BGR uint8
    [H, W, 3]), ``pred`` bool [T, H, W] and ``gt`` bool [T, H, W].
    """
    import torch
    from mmengine.dataset import pseudo_collate
    model = load_trained_model(cfg_path, checkpoint, overrides)
    dataset = build_test_dataset(model)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    wanted = sorted({info['video_id'] for info in infos})[:num_videos]
    clips = []
    for idx, info in enumerate(infos):
        if info['video_id'] not in wanted:
            continue
        item = dataset[idx]
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([item]))[0]
        frames = [f.permute(1, 2, 0).numpy() for f in item['inputs']]
        clips.append(dict(video_id=info['video_id'], exp_id=info['exp_id'], expression=sample.expression,
                          frames=frames, pred=sample.pred_masks.numpy(), gt=sample.ori_gt_masks.numpy()))
    return clips


def draw_frame(frame: np.ndarray, pred: np.ndarray, gt: np.ndarray, scale: int) -> np.ndarray:
    """Spotlight on the prediction (the rest darkened; the shapes keep the colours the expressions
    name), ground truth outlined in white; BGR uint8 [H, W, 3] -> [scale H, scale W, 3]."""
    import cv2
    img = frame.astype(np.float32)
    img[~pred] *= 0.3
    img = cv2.resize(img.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    big_gt = cv2.resize(gt.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big_gt, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, (255, 255, 255), 1)
    return img


def draw_clips(clips: List[dict], out_dir: str, max_frames: int = 8, scale: int = 2) -> List[str]:
    """One picture per video (``<video>.png``): a row per expression (text and J above), a column per
    frame. Drawn here rather than with ``RVOSVisualizer``: its coloured mask overlays and per-frame
    texts are hard to read on 96x96 frames of coloured shapes."""
    import cv2
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for vid in sorted({c['video_id'] for c in clips}):
        rows = []
        for clip in (c for c in clips if c['video_id'] == vid):
            n = min(max_frames, len(clip['frames']))
            tiles = [draw_frame(clip['frames'][t], clip['pred'][t], clip['gt'][t], scale) for t in range(n)]
            strip = np.concatenate([np.pad(t, ((0, 0), (0, 2), (0, 0)), constant_values=255) for t in tiles], 1)
            inter = np.logical_and(clip['pred'], clip['gt']).sum()
            union = np.logical_or(clip['pred'], clip['gt']).sum()
            jaccard = inter / union if union else 1.0
            header = np.full((22, strip.shape[1], 3), 255, np.uint8)
            cv2.putText(header, f'"{clip["expression"]}"   J {jaccard:.2f}   (prediction lit, ground truth '
                        'outlined)', (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            rows += [header, strip]
        path = osp.join(out_dir, f'{vid}.png')
        cv2.imwrite(path, np.concatenate(rows, 0))
        paths.append(path)
    return paths
