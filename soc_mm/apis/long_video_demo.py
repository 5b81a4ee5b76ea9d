"""The long-video benchmark of ``tools/demo/run_long_video_demo.py``: one trained model, three ways of choosing
the object of each clip of a long held-out video, scored as Long-RVOS scores them, plus identity switches.

* **per-clip**: SOC's rule, each clip of ``clip_len`` frames chooses its query on its own (the default
  options);
* **linked**: ``test_cfg.link_clips`` (the object chosen in one clip is followed into the next;
  ``soc_mm.models.inference.clip_linking``);
* **linked + absence**: also ``test_cfg.presence_thr`` (frames where the chosen object's score says it is
  absent get an empty mask).

The model runs once per video (``VideoInference.clip_candidates``: every query's outputs on each clip, all
expressions sharing the clip's backbone pass); the three rules choose from these same outputs
(``VideoInference.choose``, the code ``stream_rvos`` runs), so that they differ only by the choice. Each
expression is scored on every frame of its video against its object's masks (Long-RVOS ``Annotations``: no
PNG = absent): J, F, J&F, tIoU and vIoU as ``soc_mm.evaluation.functional.long_rvos`` defines them, and the
identity switches of its prediction among all the annotated objects of the video
(``soc_mm.evaluation.functional.identity_switches``). ``presence_thr`` and ``link_margin`` are chosen on a
calibration split (another seed), never on the held-out videos.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from soc_mm.evaluation.functional.identity_switches import frame_identities, identity_switch_frames
from soc_mm.evaluation.functional.jf import jf_per_frame, region_similarity
from soc_mm.evaluation.functional.long_rvos import load_long_rvos_meta, scores_from_frames
from soc_mm.models.dense_heads.soc_head import query_scores
from soc_mm.models.inference import ClipLinker, RVOSTestOptions, VideoInference, iter_clips
from .inference import iter_video_frames, prepare_clip

MODES = ('per-clip', 'linked', 'linked + absence')
#: the calibration grid (``choose_options``): fixed thresholds, and the thresholds that would empty these shares
#: of the calibration frames (quantiles of the top-1 query's presence: scores bunched in a narrow band are
#: still cut at every share)
PRESENCE_THRS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
PRESENCE_QUANTILES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
LINK_MARGINS = (0.1, 0.2, 0.3, 0.5)
#: bounds read from the ground truth, not selection rules: how far a better choice could take the same model
#: outputs. 'best query per clip': in every clip the query whose masks match the referred object best (mean J
#: over the clip's frames); 'per-clip, absent frames emptied': SOC's per-clip choice with the mask of every frame
#: where the referred object is absent emptied (a perfect presence decision)
CEILINGS = ('best query per clip', 'per-clip, absent frames emptied')


def mode_options(base: RVOSTestOptions, mode: str, presence_thr: float, link_margin: float) -> RVOSTestOptions:
    """The test options of one of ``MODES`` on top of ``base`` (the model's: top-1 selection, its clip length)."""
    if mode == 'per-clip':
        return base.replace(link_clips=False, presence_thr=None)
    if mode == 'linked':
        return base.replace(link_clips=True, link_margin=link_margin, presence_thr=None)
    if mode == 'linked + absence':
        return base.replace(link_clips=True, link_margin=link_margin, presence_thr=presence_thr)
    raise ValueError(f'unknown mode {mode!r}, expected one of {MODES}')


# ---------------------------------------------------------------------- the data of one video
def read_objects(annotations_dir: str, video_id: str, frames: Sequence[str], size: Tuple[int, int]) -> Tuple[
        List[str], np.ndarray]:
    """Every annotated object of a video: its ids (folder names, sorted) and bool masks ``[M, T, H, W]`` (empty
    where the object has no PNG: absent)."""
    folder = osp.join(annotations_dir, video_id)
    obj_ids = sorted((d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d))),
                     key=lambda d: (not d.isdigit(), int(d) if d.isdigit() else 0, d)) if osp.isdir(folder) else []
    masks = np.zeros((len(obj_ids), len(frames), *size), bool)
    for m, obj_id in enumerate(obj_ids):
        for t, frame in enumerate(frames):
            path = osp.join(folder, obj_id, f'{frame}.png')
            if osp.exists(path):
                image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
                if image is None or image.shape != tuple(size):
                    raise ValueError(f'{path}: unreadable or not {size[0]}x{size[1]} (H x W), the size of the frames')
                masks[m, t] = image != 0
    return obj_ids, masks


@torch.no_grad()
def video_candidates(model, frame_dir: str, expressions: Sequence[str], clip_len: int) -> List[tuple]:
    """One model run over a video (frames read lazily, clip by clip): per clip ``(candidates, samples)``, every
    query's outputs (``VideoInference.clip_candidates``, on the CPU) and the clip's data samples."""
    inference = VideoInference(model, model.test_options.replace(clip_len=clip_len))
    clips = []
    for frames in iter_clips(iter_video_frames(frame_dir), clip_len):
        inputs, samples = prepare_clip(model, frames, list(expressions))
        candidates = inference.clip_candidates(inputs, samples, inputs.new_zeros(len(samples), dtype=torch.long))
        clips.append(({key: value.cpu() for key, value in candidates.items()}, samples))
    return clips


def score_video(model, clips: List[tuple], options: RVOSTestOptions, objects: np.ndarray,
                referred: Sequence[int], with_f: bool = True, ceiling: Optional[str] = None) -> List[Dict[str, float]]:
    """Choose with ``options`` from a video's ``clips`` (``video_candidates``) and score each expression.

    Args:
        objects: bool ``[M, T, H, W]``, the video's annotated objects (``read_objects``).
        referred: per expression, the index in ``objects`` of its object (-1: none annotated).
        with_f: compute F (the boundary measure; J, tIoU and vIoU do not need it).
        ceiling: one of ``CEILINGS`` to score that bound (it reads the ground truth; ``options`` then only give
            the post-processing: per-clip choice, no linking, no ``presence_thr``); None: the rule of ``options``.

    Returns:
        per expression ``{'J', 'F', 'J&F', 'tIoU', 'vIoU', 'id_switches', 'id_switches_at_boundaries',
        'frames_on_other', 'false_positive_frames'}`` (F and J&F NaN without ``with_f``;
        ``id_switches_at_boundaries``: the switches between frames of different clips, which the choice of
        the object can change -- the others happen inside a clip, where one query is followed;
        ``frames_on_other``: frames whose prediction takes the identity of another object;
        ``false_positive_frames``: frames with a mask where the object is absent).
    """
    if ceiling is not None:
        if ceiling not in CEILINGS:
            raise ValueError(f'unknown ceiling {ceiling!r}, expected one of {CEILINGS}')
        options = options.replace(link_clips=False, presence_thr=None,
                                  return_all_queries=ceiling == CEILINGS[0])
    inference = VideoInference(model, options)
    linker = ClipLinker(options) if options.link_clips else None
    count = len(referred)
    j, f, gt_present, pred_present, identities = ([[] for _ in range(count)] for _ in range(5))
    start = 0
    for candidates, samples in clips:
        results = inference.choose(candidates, samples, linker=linker)
        length = results[0].masks.shape[0]
        for n, result in enumerate(results):
            pred = result.masks.numpy()
            gt = objects[referred[n], start:start + length] if referred[n] >= 0 else np.zeros_like(pred)
            if ceiling == CEILINGS[0]:  # the query of the clip whose masks match the referred object best
                queries = result.query_masks.numpy()  # [T, nq, H, W]
                best = int(np.argmax([region_similarity(queries[:, q], gt).mean() for q in range(queries.shape[1])]))
                pred = queries[:, best]
            elif ceiling == CEILINGS[1]:  # a perfect presence decision
                pred = pred & gt.reshape(length, -1).any(1)[:, None, None]
            if with_f:
                jn, fn = jf_per_frame(pred, gt)
            else:
                jn, fn = region_similarity(pred, gt), np.full(length, np.nan)
            j[n].append(jn)
            f[n].append(fn)
            gt_present[n].append(gt.reshape(length, -1).any(1))
            pred_present[n].append(pred.reshape(length, -1).any(1))
            identities[n].append(frame_identities(pred, objects[:, start:start + length]))
        start += length
    rows = []
    for n in range(count):
        there, painted = np.concatenate(gt_present[n]), np.concatenate(pred_present[n])
        scores = scores_from_frames(np.concatenate(j[n]), np.concatenate(f[n]), there, painted)
        ids = np.concatenate(identities[n])
        clip_of_frame = np.concatenate([np.full(len(x), c) for c, x in enumerate(identities[n])])
        switches = identity_switch_frames(ids.tolist())
        at_boundaries = sum(int(clip_of_frame[a] != clip_of_frame[b]) for a, b in switches)
        rows.append(dict(scores, **{'J&F': (scores['J'] + scores['F']) / 2},
                         id_switches=len(switches), id_switches_at_boundaries=at_boundaries,
                         frames_on_other=int(((ids >= 0) & (ids != referred[n])).sum()),
                         false_positive_frames=int((painted & ~there).sum())))
    return rows


# ---------------------------------------------------------------------- a split
class SplitRuns:
    """The model's candidates on every video of a Long-RVOS split (one run each, kept in memory: small),
    with the annotated objects, ready to be scored by any selection rule."""

    def __init__(self, model, split_dir: str, clip_len: int, log=print) -> None:
        meta = load_long_rvos_meta(osp.join(split_dir, 'meta_expressions.json'))
        self.videos = []
        for i, (video_id, video) in enumerate(meta.items()):
            frames = video['frames']
            frame_dir = osp.join(split_dir, 'JPEGImages', video_id)
            first = cv2.imread(osp.join(frame_dir, f'{frames[0]}.jpg'))
            if first is None:
                raise FileNotFoundError(f'{frame_dir}/{frames[0]}.jpg: the first frame of video {video_id!r}')
            obj_ids, objects = read_objects(osp.join(split_dir, 'Annotations'), video_id, frames, first.shape[:2])
            exp_ids = list(video['expressions'])
            exps = [video['expressions'][e] for e in exp_ids]
            referred = [obj_ids.index(e['obj_id']) if e['obj_id'] in obj_ids else -1 for e in exps]
            clips = video_candidates(model, frame_dir, [e['exp'] for e in exps], clip_len)
            self.videos.append(dict(video_id=video_id, exp_ids=exp_ids, types=[e['type'] for e in exps],
                                    expressions=[e['exp'] for e in exps], referred=referred, objects=objects,
                                    clips=clips, num_frames=len(frames)))
            log(f'  {split_dir}: video {i + 1}/{len(meta)} ({video_id}, {len(frames)} frames, {len(exps)} '
                f'expressions) run')

    def score(self, model, options: RVOSTestOptions, with_f: bool = True, ceiling: Optional[str] = None) -> List[dict]:
        """Per expression of every video: ``video``, ``exp_id``, ``type``, ``exp`` and the scores of ``score_video``
        (of the rule of ``options``, or of one of ``CEILINGS``)."""
        rows = []
        for video in self.videos:
            scores = score_video(model, video['clips'], options, video['objects'], video['referred'], with_f, ceiling)
            for exp_id, desc_type, exp, row in zip(video['exp_ids'], video['types'], video['expressions'], scores):
                rows.append(dict(row, video=video['video_id'], exp_id=exp_id, type=desc_type, exp=exp))
        return rows


def summary(rows: Sequence[dict]) -> Dict[str, float]:
    """Means over the expressions of J, F, J&F, tIoU, vIoU, and the identity switches in total and per
    expression."""
    out = {key: float(np.mean([r[key] for r in rows])) for key in ('J', 'F', 'tIoU', 'vIoU')}
    out['J&F'] = (out['J'] + out['F']) / 2
    out['id_switches'] = int(sum(r['id_switches'] for r in rows))
    out['id_switches_per_expression'] = out['id_switches'] / max(1, len(rows))
    for key in ('id_switches_at_boundaries', 'frames_on_other', 'false_positive_frames'):
        out[key] = int(sum(r[key] for r in rows))
    out['expressions'] = len(rows)
    return out


def summary_by(rows: Sequence[dict], key: str) -> Dict[str, dict]:
    """``summary`` of the expressions sharing each value of ``row[key]``, in the order of first appearance."""
    groups: Dict[str, list] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return {value: summary(group) for value, group in groups.items()}


def per_type(rows: Sequence[dict]) -> Dict[str, dict]:
    """``summary`` of the expressions of each description type (Long-RVOS ``type``: static, dynamic,
    static+dynamic), in that order of first appearance."""
    return summary_by(rows, 'type')


def per_video(rows: Sequence[dict]) -> Dict[str, dict]:
    """``summary`` of each video's expressions, in video order."""
    return summary_by(rows, 'video')


def top1_presence(runs: SplitRuns) -> List[List[Tuple[np.ndarray, Optional[np.ndarray], bool]]]:
    """Per expression of every video, per clip: the presence score of SOC's top-1 query on each frame [T] (what
    ``presence_thr`` thresholds: the head's ``presence`` when it has a presence branch, else the frame score),
    whether the referred object is there (bool [T]; None when it has no annotation) and whether the score is
    a presence branch's."""
    out = []
    for video in runs.videos:
        for n, ref in enumerate(video['referred']):
            gt = video['objects'][ref].reshape(video['num_frames'], -1).any(1) if ref >= 0 else None
            start, clips = 0, []
            for candidates, _ in video['clips']:
                clip_scores, frame_scores = query_scores(candidates['cls'][n].float())  # [nq], [T, nq]
                q = int(clip_scores.argmax())  # SOC's top-1: the best clip score
                from_branch = 'presence' in candidates
                if from_branch:
                    frame_scores = candidates['presence'][n].float()
                scores = frame_scores[:, q].numpy()
                clips.append((scores, None if gt is None else gt[start:start + len(scores)], from_branch))
                start += len(scores)
            out.append(clips)
    return out


def presence_thresholds(runs: SplitRuns, quantiles: Sequence[float] = PRESENCE_QUANTILES) -> List[float]:
    """``PRESENCE_THRS`` and, for each share in ``quantiles``, the threshold that empties that share of the
    frames of ``runs`` (the quantile of the top-1 query's presence score), sorted, without repeats."""
    scores = np.concatenate([scores for clips in top1_presence(runs) for scores, _, _ in clips])
    from_data = np.quantile(scores, quantiles).tolist() if len(scores) else []
    return sorted(set(PRESENCE_THRS) | {round(float(t), 6) for t in from_data})


def frame_score_separation(runs: SplitRuns) -> Dict[str, float]:
    """How well the presence score of each clip's top-1 query tells the frames where the referred object is
    present from those where it is absent (what ``presence_thr`` thresholds: the head's ``presence`` when it has a
    presence branch, ``PresenceSOCHead``, else the frame score): the AUC (probability that a present frame
    scores above an absent one, ties half), the mean score of both, the standard deviation of the score inside a
    clip and that of the clips' mean scores (mean over expressions and clips); ``source``: which score."""
    present, absent, within, between = [], [], [], []
    source = 'frame score'
    for clips in top1_presence(runs):
        means = []
        for scores, there, from_branch in clips:
            source = 'presence branch' if from_branch else source
            if there is not None:
                present += scores[there].tolist()
                absent += scores[~there].tolist()
            within.append(float(scores.std()))
            means.append(float(scores.mean()))
        between.append(float(np.std(means)))
    present_arr, absent_arr = np.sort(np.asarray(present)), np.asarray(absent)
    if len(present_arr) and len(absent_arr):
        below = np.searchsorted(present_arr, absent_arr, side='left')  # present frames scoring below each absent
        ties = np.searchsorted(present_arr, absent_arr, side='right') - below
        above = (len(present_arr) - below - ties).sum()
        auc = float((above + 0.5 * ties.sum()) / (len(present_arr) * len(absent_arr)))
    else:
        auc = float('nan')
    return dict(auc=auc, present_frames=len(present_arr), absent_frames=len(absent_arr),
                mean_present=float(np.mean(present_arr)) if len(present_arr) else float('nan'),
                mean_absent=float(np.mean(absent_arr)) if len(absent_arr) else float('nan'),
                std_within_clip=float(np.mean(within)), std_between_clips=float(np.mean(between)), source=source)


def choose_options(model, runs: SplitRuns, base: RVOSTestOptions, presence_thrs: Optional[Sequence[float]] = None,
                   link_margins: Sequence[float] = LINK_MARGINS) -> Tuple[float, float, List[dict]]:
    """``presence_thr`` and ``link_margin`` of 'linked + absence' with the best mean vIoU on ``runs`` (the
    calibration split; J only, no F), ties to the smaller margin then the lower threshold. ``presence_thrs``:
    the thresholds tried (default ``presence_thresholds(runs)``). Returns them and the grid (``presence_thr``,
    ``link_margin``, ``vIoU``, ``tIoU``, ``id_switches``)."""
    if presence_thrs is None:
        presence_thrs = presence_thresholds(runs)
    grid = []
    for margin in link_margins:
        for thr in presence_thrs:
            s = summary(runs.score(model, mode_options(base, 'linked + absence', thr, margin), with_f=False))
            grid.append(dict(presence_thr=thr, link_margin=margin, vIoU=s['vIoU'], tIoU=s['tIoU'],
                             id_switches=s['id_switches']))
    best = max(grid, key=lambda g: (round(g['vIoU'], 12), -g['link_margin'], -g['presence_thr']))
    return best['presence_thr'], best['link_margin'], grid


def results_table(summaries: Dict[str, dict], presence_thr: float, link_margin: float,
                  ceilings: Optional[Dict[str, dict]] = None) -> str:
    """The markdown table of the three modes (``summary`` each) with the differences to per-clip; ``ceilings``
    (``summary`` of some of ``CEILINGS``): rows after them, marked as read from the ground truth."""
    base = summaries['per-clip']
    lines = ['| held-out long videos | expressions | J&F | tIoU | vIoU | identity switches (at clip boundaries) | '
             'frames on another object | frames painted where the object is absent |',
             '|---|---|---|---|---|---|---|---|']
    named = [(mode, summaries[mode]) for mode in MODES] + [
        (f'ceiling (ground truth): {name}', s) for name, s in (ceilings or {}).items()]
    for mode, s in named:
        name = mode if mode == 'per-clip' or mode.startswith('ceiling') else f'{mode} (margin {link_margin:g}' + (
            f', presence_thr {presence_thr:g})' if 'absence' in mode else ')')
        diff = '' if mode == 'per-clip' else f" ({s['vIoU'] - base['vIoU']:+.3f})"
        tdiff = '' if mode == 'per-clip' else f" ({s['tIoU'] - base['tIoU']:+.3f})"
        lines.append(f"| {name} | {s['expressions']} | {s['J&F']:.3f} | {s['tIoU']:.3f}{tdiff} | "
                     f"{s['vIoU']:.3f}{diff} | {s['id_switches']} ({s['id_switches_at_boundaries']}) | "
                     f"{s['frames_on_other']} | "
                     f"{s['false_positive_frames']} |")
    return '\n'.join(lines)


def per_video_table(videos: Dict[str, Dict[str, dict]]) -> str:
    """One row per held-out video: J&F / tIoU / vIoU / identity switches of each mode."""
    head = '| video | ' + ' | '.join(f'{m}: J&F / tIoU / vIoU / IDs' for m in MODES) + ' |'
    lines = [head, '|---|' + '---|' * len(MODES)]
    for video in videos[MODES[0]]:
        cells = []
        for mode in MODES:
            s = videos[mode][video]
            cells.append(f"{s['J&F']:.3f} / {s['tIoU']:.3f} / {s['vIoU']:.3f} / {s['id_switches']}")
        lines.append(f'| {video} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def evaluate_targets(summaries: Dict[str, dict]) -> Dict[str, bool]:
    """linked + absence vs per-clip: >= +0.10 vIoU, >= +0.10 tIoU, at least 2x fewer identity switches."""
    base, best = summaries['per-clip'], summaries['linked + absence']
    return {'vIoU +0.10': best['vIoU'] - base['vIoU'] >= 0.10, 'tIoU +0.10': best['tIoU'] - base['tIoU'] >= 0.10,
            'identity switches / 2': 2 * best['id_switches'] <= base['id_switches']}


def load_model(config: str, checkpoint: Optional[str], overrides: Sequence[str]):
    """The trained model (``demo_runner.load_trained_model``) with top-1 selection (one object per Long-RVOS
    description)."""
    from .demo_runner import load_trained_model
    model = load_trained_model(config, checkpoint, overrides)
    model.test_options = model.test_options.replace(object_selection='top1', allow_no_target=False)
    return model
