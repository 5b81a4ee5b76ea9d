"""Checks of a submission zip before it is uploaded to an evaluation server (MeViS, Ref-YouTube-VOS).

The servers take one zip of PNG masks, one per frame of every expression of the split, and score a broken
one late, as zeros, or not at all. :func:`check_submission` reads the zip's directory and each PNG's header
(and, with ``decode=True``, every PNG whole) and lists every problem:

* layout: MeViS wants ``<video>/<exp_id>/<frame>.png`` at the zip's top level (``cd out && zip -r ../x.zip *``;
  what :class:`~soc_mm.evaluation.metrics.MeViSSubmissionMetric` writes), Ref-YouTube-VOS
  ``Annotations/<video>/<exp_id>/<frame>.png`` (what :class:`~soc_mm.evaluation.metrics.RefYTVOSSubmissionMetric`
  writes); an enclosing folder, a missing or extra ``Annotations/`` level, unsafe member names;
* completeness: every video, expression and frame of the meta file has its PNG;
* nothing extra: no other videos, expressions, frames or files (``.DS_Store``, ``__MACOSX/``, ...);
* PNG: a real PNG, 1- or 8-bit grayscale or palette (16-bit PNGs are read by OpenCV's 8-bit grayscale
  conversion as their high byte: a 0/1 mask reads as empty; RGB masks are not what the servers read), and
  every frame of a video the same size (and, with ``frames_dir``, the size of its JPEG frame);
* the zip itself: readable, no member whose data fails its CRC.
"""
import os.path as osp
import struct
import zipfile
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from soc_mm.datasets.utils import first_repeated, read_json

SUBMISSION_BENCHMARKS = ('mevis', 'ref-ytvos')
#: the zip folder holding ``<video>/<exp_id>/<frame>.png`` per benchmark ('' = the top level)
ZIP_ROOTS = {'mevis': '', 'ref-ytvos': 'Annotations'}
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: PNG colour types (IHDR): 0 grayscale, 2 RGB, 3 palette, 4 grayscale + alpha, 6 RGBA
PNG_COLOR_TYPES = {0: 'grayscale', 2: 'RGB', 3: 'palette', 4: 'grayscale+alpha', 6: 'RGBA'}
#: files zip tools add that are not part of a submission
JUNK_NAMES = ('.DS_Store', 'Thumbs.db', 'desktop.ini')


@dataclass
class Problem:
    """One problem: ``kind`` (a short tag, e.g. ``'missing frame'``) and ``message`` (naming the member,
    video, expression or frame)."""
    kind: str
    message: str

    def __str__(self) -> str:
        return f'{self.kind}: {self.message}'


def png_header(data: bytes) -> Optional[Tuple[int, int, int, int]]:
    """``(width, height, bit depth, colour type)`` from the first 26 bytes of a PNG, or None if ``data`` is
    not a PNG."""
    if len(data) < 26 or data[:8] != PNG_SIGNATURE or data[12:16] != b'IHDR':
        return None
    width, height = struct.unpack('>II', data[16:24])
    return width, height, data[24], data[25]


def load_submission_meta(meta_file: str, exclude_meta: Optional[str] = None) -> 'OrderedDict[str, dict]':
    """``{video: {'frames': [...], 'expressions': [exp_id, ...]}}`` expected in the zip, from a
    ``meta_expressions.json`` (MeViS v1 / v2, Ref-YouTube-VOS); videos of ``exclude_meta`` are left out
    (Ref-YouTube-VOS: the competition test videos, listed in ``meta_expressions/test/meta_expressions.json``,
    are in the valid file but not in a valid submission)."""
    data = read_json(meta_file, 'meta_expressions file')
    videos = data.get('videos') if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_file}: expected {{'videos': {{video_id: {{'frames': [...], 'expressions': "
                         '{...}}}} at the top level')
    excluded = set()
    if exclude_meta:
        other = read_json(exclude_meta, 'meta_expressions file of the excluded videos')
        if not isinstance(other, dict) or not isinstance(other.get('videos'), dict):
            raise ValueError(f"{exclude_meta}: expected {{'videos': {{...}}}} at the top level")
        excluded = set(other['videos'])
    expected = OrderedDict()
    for video_id, video in videos.items():
        if video_id in excluded:
            continue
        where = f'{meta_file}: video {video_id!r}'
        frames = video.get('frames') if isinstance(video, dict) else None
        expressions = video.get('expressions') if isinstance(video, dict) else None
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise ValueError(f"{where}: 'frames' must be a list of frame names")
        if first_repeated(frames) is not None:
            raise ValueError(f"{where}: 'frames' lists frame {first_repeated(frames)!r} twice")
        if not isinstance(expressions, dict):
            raise ValueError(f"{where}: 'expressions' must be a dict {{exp_id: {{...}}}}")
        expected[str(video_id)] = dict(frames=list(frames), expressions=[str(e) for e in expressions])
    return expected


def _frame_size(frames_dir: str, video_id: str, frame: str) -> Optional[Tuple[int, int]]:
    """(W, H) of ``<frames_dir>/<video>/<frame>.jpg`` (header only), or None if it is not there."""
    path = osp.join(frames_dir, video_id, f'{frame}.jpg')
    if not osp.isfile(path):
        return None
    from PIL import Image
    with Image.open(path) as image:
        return image.size


def check_submission(benchmark: str, zip_path: str, meta_expressions: str, *, frames_dir: Optional[str] = None,
                     exclude_meta: Optional[str] = None, decode: bool = False) -> List[Problem]:
    """Every problem of a submission zip for ``benchmark`` (``'mevis'`` or ``'ref-ytvos'``).

    Args:
        benchmark (str): ``'mevis'`` (MeViS v1 or v2 ``valid``) or ``'ref-ytvos'`` (Ref-YouTube-VOS ``valid``).
        zip_path (str): the zip to upload.
        meta_expressions (str): the split's expression file (its videos, frames and expressions are the
            PNGs expected).
        frames_dir (str, optional): the split's ``JPEGImages`` folder; each PNG must then have the size of
            its frame (else: the size of the video's other PNGs).
        exclude_meta (str, optional): a meta file whose videos are not expected (Ref-YouTube-VOS:
            ``meta_expressions/test/meta_expressions.json``).
        decode (bool): decode every PNG whole (slower; finds PNGs whose data is broken after a good header).

    Returns:
        list[Problem]: empty when the zip is ready to upload.

    Raises:
        ValueError: an unknown benchmark or a malformed meta file (these are not problems of the zip).
    """
    if benchmark not in SUBMISSION_BENCHMARKS:
        raise ValueError(f'unknown benchmark {benchmark!r}; expected one of {SUBMISSION_BENCHMARKS}')
    expected = load_submission_meta(meta_expressions, exclude_meta)
    problems: List[Problem] = []
    if not osp.isfile(zip_path):
        return [Problem('not a zip', f'{zip_path} does not exist')]
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        return [Problem('not a zip', f'{zip_path} cannot be read as a zip ({error})')]
    with zf:
        root = ZIP_ROOTS[benchmark]
        prefix = f'{root}/' if root else ''
        found: Dict[Tuple[str, str], Dict[str, zipfile.ZipInfo]] = defaultdict(dict)
        files = [info for info in zf.infolist() if not info.is_dir()]
        if not files:
            return [Problem('empty zip', f'{zip_path} holds no files')]
        problems += _layout_problems(benchmark, files, expected, prefix)
        for info in files:
            name = info.filename
            parts = name.split('/')
            if name.startswith('/') or '\\' in name or any(p in ('', '.', '..') for p in parts):
                problems.append(Problem('unsafe name', f'{name!r}: absolute, with backslashes or with "." / ".." '
                                        'parts; servers extract it elsewhere or refuse the zip'))
                continue
            if parts[-1] in JUNK_NAMES or parts[0] == '__MACOSX' or parts[-1].startswith('._'):
                problems.append(Problem('extra file', f'{name}: not a mask (added by the zip tool); zip with '
                                        '`zip -r -X` or remove it'))
                continue
            if not name.startswith(prefix) or len(parts) != 3 + bool(root):
                continue  # reported by _layout_problems
            video_id, exp_id, file = parts[-3:]
            if not file.endswith('.png'):
                problems.append(Problem('extra file', f'{name}: not a .png file'))
                continue
            found[(video_id, exp_id)][file[:-4]] = info
        problems += _completeness_problems(expected, found, prefix)
        problems += _png_problems(zf, expected, found, prefix, frames_dir, decode)
        try:
            bad = zf.testzip()
        except Exception as error:  # noqa: BLE001 - a broken archive, whatever the zipfile error
            problems.append(Problem('broken zip', f'{zip_path}: {error}'))
        else:
            if bad is not None:
                problems.append(Problem('broken zip', f'{bad}: its data does not match its CRC (truncated or '
                                        'corrupted upload copy)'))
    return problems


def _layout_problems(benchmark: str, files: Sequence[zipfile.ZipInfo], expected: dict,
                     prefix: str) -> List[Problem]:
    """Members outside ``<prefix><video>/<exp_id>/<frame>.png``, said once per cause when it is systematic
    (an enclosing folder, a missing or extra ``Annotations/``)."""
    depth = 3 + bool(prefix)
    wrong = [f.filename for f in files if not (f.filename.startswith(prefix) and f.filename.count('/') == depth - 1)]
    wrong = [n for n in wrong if n.split('/')[-1] not in JUNK_NAMES and not n.startswith('__MACOSX/')]
    if not wrong:
        return []
    problems = []
    tops = {n.split('/')[0] for n in wrong}
    if benchmark == 'mevis' and tops <= {'Annotations'} and all(n.count('/') == 3 for n in wrong):
        return [Problem('layout', f'the masks are under Annotations/ ({len(wrong)} files, e.g. {wrong[0]}); the '
                        'MeViS server wants <video>/<exp_id>/<frame>.png at the top level of the zip: '
                        'cd Annotations && zip -r ../submission.zip *')]
    if benchmark == 'ref-ytvos' and all(n.count('/') == 2 for n in wrong) and tops & set(expected):
        return [Problem('layout', f'the masks are at the top level of the zip ({len(wrong)} files, e.g. '
                        f'{wrong[0]}); the Ref-YouTube-VOS server wants Annotations/<video>/<exp_id>/<frame>.png: '
                        'zip the Annotations folder itself (zip -r submission.zip Annotations)')]
    if len(tops) == 1 and all(n.count('/') == depth for n in wrong):
        top = next(iter(tops))
        return [Problem('layout', f'everything is inside the folder {top}/ ({len(wrong)} files, e.g. {wrong[0]}); '
                        f'the server wants {prefix or ""}<video>/<exp_id>/<frame>.png '
                        f'{"under Annotations/ " if prefix else "at the top level "}of the zip: zip from inside '
                        f'{top}/')]
    for name in wrong[:50]:
        problems.append(Problem('extra file', f'{name}: not {prefix}<video>/<exp_id>/<frame>.png'))
    if len(wrong) > 50:
        problems.append(Problem('extra file', f'... and {len(wrong) - 50} more files outside the expected layout'))
    return problems


def _completeness_problems(expected: dict, found: dict, prefix: str) -> List[Problem]:
    problems = []
    found_videos = {v for v, _ in found}
    for video_id, video in expected.items():
        if video_id not in found_videos:
            problems.append(Problem('missing video', f'{prefix}{video_id}/: none of its {len(video["expressions"])} '
                                    'expressions has masks'))
            continue
        for exp_id in video['expressions']:
            frames = found.get((video_id, exp_id))
            if frames is None:
                problems.append(Problem('missing expression', f'{prefix}{video_id}/{exp_id}/: no masks'))
                continue
            missing = [f for f in video['frames'] if f not in frames]
            if missing:
                problems.append(Problem('missing frame', f'{prefix}{video_id}/{exp_id}/: {len(missing)} of the '
                                        f'{len(video["frames"])} frames have no PNG (e.g. {missing[:3]})'))
            extra = sorted(set(frames) - set(video['frames']))
            if extra:
                problems.append(Problem('extra frame', f'{prefix}{video_id}/{exp_id}/: {len(extra)} PNGs of frames '
                                        f'the video does not list (e.g. {extra[:3]})'))
    for video_id in sorted(found_videos - set(expected)):
        problems.append(Problem('extra video', f'{prefix}{video_id}/: not a video of the meta file'))
    for video_id, exp_id in sorted(found):
        if video_id in expected and exp_id not in expected[video_id]['expressions']:
            problems.append(Problem('extra expression', f'{prefix}{video_id}/{exp_id}/: not an expression of '
                                    f'video {video_id!r}'))
    return problems


def _png_problems(zf: zipfile.ZipFile, expected: dict, found: dict, prefix: str, frames_dir: Optional[str],
                  decode: bool) -> List[Problem]:
    problems = []
    video_size: Dict[str, Tuple[Tuple[int, int], str]] = {}
    for (video_id, exp_id), frames in sorted(found.items()):
        for frame, info in sorted(frames.items()):
            name = info.filename
            try:
                with zf.open(info) as f:
                    head = f.read(26)
            except Exception as error:  # noqa: BLE001 - unreadable member, whatever the cause
                problems.append(Problem('unreadable PNG', f'{name}: {error}'))
                continue
            header = png_header(head)
            if header is None:
                problems.append(Problem('not a PNG', f'{name}: the file is not a PNG image'))
                continue
            width, height, depth, color = header
            if color not in (0, 3) or depth not in (1, 8):
                kind = PNG_COLOR_TYPES.get(color, f'colour type {color}')
                problems.append(Problem('PNG mode', f'{name}: {depth}-bit {kind}; the servers read 8-bit grayscale '
                                        '(or palette) masks: save 0 = background, 255 = object as 8-bit grayscale'
                                        + (' (a 16-bit PNG reads as its high byte: a 0/1 mask is empty)'
                                           if depth == 16 else '')))
            size = (width, height)
            reference = None
            if frames_dir is not None and video_id in expected:
                jpeg = _frame_size(frames_dir, video_id, frame)
                if jpeg is not None:
                    reference = (jpeg, f'its frame {osp.join(frames_dir, video_id, frame)}.jpg')
            if reference is None:
                reference = video_size.setdefault(video_id, (size, f'{name}'))
            if size != reference[0]:
                problems.append(Problem('PNG size', f'{name}: {height}x{width} (H x W) but {reference[1]} is '
                                        f'{reference[0][1]}x{reference[0][0]}'))
            if decode:
                from PIL import Image
                try:
                    with zf.open(info) as f, Image.open(f) as image:
                        image.load()
                except Exception as error:  # noqa: BLE001 - any decoding failure names the file
                    problems.append(Problem('unreadable PNG', f'{name}: {error}'))
    return problems


def problem_report(problems: Sequence[Problem], per_kind: int = 20) -> List[str]:
    """Lines naming each problem (at most ``per_kind`` of a kind, then a count of the rest)."""
    by_kind: Dict[str, List[Problem]] = OrderedDict()
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    lines = []
    for kind, items in by_kind.items():
        lines += [str(p) for p in items[:per_kind]]
        if len(items) > per_kind:
            lines.append(f'{kind}: ... and {len(items) - per_kind} more')
    return lines
