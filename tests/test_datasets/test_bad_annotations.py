"""Bad annotation files fail at load time (or when a mask is read) with errors naming the file, the video,
the expression id / field and what was expected. Real on-disk data from the synthetic generator, corrupted."""
import csv
import json
import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from soc_mm.registry import DATASETS

init_default_scope('soc_mm')

BLANKS = ['', '  \t ']
YTVOS_PIPE = [dict(type='LoadRVOSFrames'), dict(type='LoadPaletteMasks'), dict(type='PackRVOSInputs')]


def build(cfg):
    return DATASETS.build(cfg)


def raises(exc, message):
    """pytest.raises matching ``message`` literally (from its start)."""
    return pytest.raises(exc, match='^' + re.escape(message))


def edit_json(path, edit, replace=False):
    """Apply ``edit`` to the json in ``path`` (in place, or ``replace``: its result is the new content)."""
    with open(path) as f:
        data = json.load(f)
    result = edit(data)
    with open(path, 'w') as f:
        json.dump(result if replace else data, f)


def edit_csv(path, edit):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    edit(rows)
    with open(path, 'w', newline='') as f:
        csv.writer(f).writerows(rows)


def set_first_cell(path, video_id, column, value):
    """Set ``column`` of the first row of ``video_id`` in a csv file; returns that row before the edit."""
    found = []

    def edit(rows):
        row = next(r for r in rows if r[0] == video_id)
        found.append(list(row))
        row[column] = value
    edit_csv(path, edit)
    return found[0]


def copy_of(pristine, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(pristine[0], root)
    return root, pristine[1]


@pytest.fixture(scope='module')
def ytvos_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ytvos'))
    return root, synthetic.generate_ref_youtube_vos(root, num_train=2, num_valid=1, num_test=1, num_frames=5,
                                                    size=(32, 40), seed=1)


@pytest.fixture
def ytvos(ytvos_pristine, tmp_path):
    root, manifest = copy_of(ytvos_pristine, tmp_path)
    vid = sorted(manifest['train'])[0]
    return root, manifest, vid, osp.join(root, 'meta_expressions', 'train', 'meta_expressions.json')


def ytvos_cfg(root, **kwargs):
    return dict(dict(type='RefYouTubeVOSDataset', data_root=root, num_frames=5, pipeline=YTVOS_PIPE), **kwargs)


# ------------------------------------------------------------------------------------------ empty expressions
@pytest.mark.parametrize('blank', BLANKS)
def test_ytvos_empty_expression(ytvos, blank):
    root, _, vid, path = ytvos
    edit_json(path, lambda d: d['videos'][vid]['expressions']['1'].update(exp=blank))
    with raises(ValueError, f"{path}: video '{vid}' expression '1': empty referring expression {blank!r} "
                            '(expected a non-empty sentence)'):
        build(ytvos_cfg(root))


def test_ytvos_expression_not_a_string(ytvos):
    root, _, vid, path = ytvos
    edit_json(path, lambda d: d['videos'][vid]['expressions']['0'].update(exp=['the', 'red', 'circle']))
    with raises(ValueError, f"{path}: video '{vid}' expression '0': the referring expression must be a string, "
                            "got list ['the', 'red', 'circle']"):
        build(ytvos_cfg(root))


@pytest.mark.parametrize('blank', BLANKS)
def test_ref_davis_empty_expression(tmp_path, blank):
    root = str(tmp_path / 'davis')
    manifest = synthetic.generate_ref_davis(root, num_valid=1, num_frames=3, size=(24, 32))
    vid = sorted(manifest['valid'])[0]
    path = osp.join(root, 'meta_expressions', 'valid', 'meta_expressions.json')
    edit_json(path, lambda d: d['videos'][vid]['expressions']['6'].update(exp=blank))
    with raises(ValueError, f"{path}: video '{vid}' expression '6': empty referring expression {blank!r}"):
        build(dict(type='RefDAVIS17Dataset', data_root=root, pipeline=[]))


@pytest.fixture(scope='module')
def a2d_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('a2d'))
    return root, synthetic.generate_a2d_sentences(root, num_train=1, num_test=1, num_frames=6, size=(32, 48),
                                                  annotated_frames=2, seed=2)


@pytest.mark.parametrize('blank', BLANKS)
def test_a2d_empty_expression(a2d_pristine, tmp_path, blank):
    root, manifest = copy_of(a2d_pristine, tmp_path)
    vid = next(v for v, info in sorted(manifest['videos'].items()) if info['subset'] == 1)  # a test video
    path = osp.join(root, 'text_annotations', 'a2d_annotation.txt')
    _, inst, _ = set_first_cell(path, vid, 2, blank)
    with raises(ValueError, f"{path}: video '{vid}' expression '{inst}': empty referring expression {blank!r}"):
        build(dict(type='A2DSentencesDataset', data_root=root, split='test', pipeline=[]))
    # the train split does not use the rows of this test video
    assert len(build(dict(type='A2DSentencesDataset', data_root=root, split='train', pipeline=[]))) > 0


def test_a2d_instance_id_not_an_integer(a2d_pristine, tmp_path):
    root, manifest = copy_of(a2d_pristine, tmp_path)
    vid = next(v for v, info in sorted(manifest['videos'].items()) if info['subset'] == 0)
    path = osp.join(root, 'text_annotations', 'a2d_annotation.txt')
    set_first_cell(path, vid, 1, 'abc')
    with raises(ValueError, f"{path}: field instance_id of video '{vid}' must be an integer (or a string of one), "
                            "got str 'abc'"):
        build(dict(type='A2DSentencesDataset', data_root=root, split='train', pipeline=[]))
    videoset = osp.join(root, 'Release', 'videoset.csv')
    first = next(csv.reader(open(videoset)))[0]
    set_first_cell(videoset, first, 8, 'train')
    with raises(ValueError, f"{videoset}: field subset (9th column) of video '{first}' must be an integer"):
        build(dict(type='A2DSentencesDataset', data_root=root, split='train', pipeline=[]))


@pytest.mark.parametrize('blank', BLANKS)
def test_jhmdb_empty_expression(tmp_path, blank):
    root = str(tmp_path / 'jhmdb')
    manifest = synthetic.generate_jhmdb_sentences(root, num_videos=2, num_frames=5, size=(24, 32))
    path = osp.join(root, 'jhmdb_annotation.txt')
    edit_csv(path, lambda rows: rows[2].__setitem__(1, blank))  # data row 2 (row 0 is the header)
    vid = sorted(manifest['videos'])[1]
    with raises(ValueError, f"{path}: video '{vid}' expression 'row 2': empty referring expression {blank!r}"):
        build(dict(type='JHMDBSentencesDataset', data_root=root, pipeline=[]))


def test_jhmdb_samples_file_checked(tmp_path):
    root = str(tmp_path / 'jhmdb')
    synthetic.generate_jhmdb_sentences(root, num_videos=1, num_frames=5, size=(24, 32))
    samples = str(tmp_path / 'samples.json')
    with open(samples, 'w') as f:
        json.dump([['v', 'Rename_Images/a/v/00002.png', 'm.mat', 5, ' ']], f)
    with raises(ValueError, f"{samples}: video 'v' expression 'sample 0': empty referring expression ' '"):
        build(dict(type='JHMDBSentencesDataset', data_root=root, samples_file=samples, pipeline=[]))
    with open(samples, 'w') as f:
        json.dump([['v', 'Rename_Images/a/v/00002.png', 5, 'the red circle']], f)
    with raises(ValueError, f'{samples}: sample 0 must be a list [video_id, frame_path, mask_path, total_frames, '
                            "query], got ['v', 'Rename_Images/a/v/00002.png', 5, 'the red circle']"):
        build(dict(type='JHMDBSentencesDataset', data_root=root, samples_file=samples, pipeline=[]))


@pytest.fixture(scope='module')
def refcoco_pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return root, synthetic.generate_refcoco(root, num_images=dict(train=2, val=1), size=(24, 32))


@pytest.mark.parametrize('blank', BLANKS)
def test_refcoco_empty_expression(refcoco_pristine, tmp_path, blank):
    root, _ = copy_of(refcoco_pristine, tmp_path)
    path = osp.join(root, 'refcoco', 'instances_refcoco_train.json')
    entry = json.load(open(path))['images'][1]
    edit_json(path, lambda d: d['images'][1].update(caption=blank))
    with raises(ValueError, f"{path}: video '{entry['file_name']}' expression {entry['id']}: empty referring "
                            f'expression {blank!r}'):
        build(dict(type='RefCOCOVideoDataset', data_root=root, pipeline=[]))


def test_refcoco_structure_errors(refcoco_pristine, tmp_path):
    root, _ = copy_of(refcoco_pristine, tmp_path)
    path = osp.join(root, 'refcoco', 'instances_refcoco_train.json')
    pristine = json.load(open(path))
    cfg = dict(type='RefCOCOVideoDataset', data_root=root, pipeline=[])
    assert len(build(cfg)) == len(pristine['images'])
    edit_json(path, lambda d: d.update(images={str(i['id']): i for i in d['images']}))
    with raises(ValueError, f'{path}: field images must be a list (one entry per referring expression), got dict'):
        build(cfg)
    edit_json(path, lambda d: d.update(images=[]))
    with raises(ValueError, f'{path}: field images is empty, expected at least one image entry'):
        build(cfg)
    edit_json(path, lambda d: d.update(images=pristine['images'], annotations=[
        {k: v for k, v in a.items() if k != 'bbox'} for a in pristine['annotations']]))
    first = pristine['annotations'][0]
    with raises(ValueError, f"{path}: field annotations[id={first['id']}] of images[id={first['image_id']}] lacks "
                            'the key "bbox"'):
        build(cfg)


# ------------------------------------------------------------------------------------------ meta_expressions.json
def test_ytvos_videos_given_as_a_list(ytvos):
    root, _, _, path = ytvos
    edit_json(path, lambda d: d.update(videos=[dict(v, video_id=k) for k, v in d['videos'].items()]))
    with raises(ValueError, f'{path}: field videos must be a dict {{<video_id>: {{"frames": [...], '
                            '"expressions": {<exp_id>: {"exp": ..., "obj_id": ...}}}}, got list'):
        build(ytvos_cfg(root))
    edit_json(path, lambda d: d['videos'], replace=True)  # the whole file a list
    with raises(ValueError, f'{path}: field <top level> must be a dict with the key "videos", got list'):
        build(ytvos_cfg(root))


def test_ytvos_obj_id_not_an_integer(ytvos):
    root, _, vid, path = ytvos
    edit_json(path, lambda d: d['videos'][vid]['expressions']['0'].update(obj_id='abc'))
    with raises(ValueError, f'{path}: field videos["{vid}"]["expressions"]["0"]["obj_id"] must be an integer '
                            "(or a string of one), got str 'abc'"):
        build(ytvos_cfg(root))
    edit_json(path, lambda d: d['videos'][vid]['expressions']['0'].update(obj_id=1.5))
    with raises(ValueError, f'{path}: field videos["{vid}"]["expressions"]["0"]["obj_id"] must be an integer'):
        build(ytvos_cfg(root))


def test_ytvos_obj_id_is_ascii_decimal(ytvos):
    """int() also reads '0_1' as 1 and other scripts' digits ('\u0661' is 1): neither is an object id."""
    root, _, vid, path = ytvos
    for value in ('0_1', '\u0661', '1e3'):
        edit_json(path, lambda d: d['videos'][vid]['expressions']['0'].update(obj_id=value))
        with raises(ValueError, f'{path}: field videos["{vid}"]["expressions"]["0"]["obj_id"] must be an integer '
                                f'(or a string of one), got str {value!r}'):
            build(ytvos_cfg(root))


def test_ytvos_frame_listed_twice(ytvos):
    root, _, vid, path = ytvos
    edit_json(path, lambda d: d['videos'][vid]['frames'].insert(1, d['videos'][vid]['frames'][0]))
    with raises(ValueError, f'{path}: field videos["{vid}"]["frames"] lists frame \'00000\' twice'):
        build(ytvos_cfg(root))


def test_json_the_parser_cannot_read_names_the_file(ytvos):
    """A 5000-digit integer (Python's int limit) or 100,000 nested lists (recursion limit) is an error naming
    the file, not a raw ValueError / RecursionError."""
    root, _, _, path = ytvos
    for text, message in (('{"videos": {"v": {"frames": [' + '9' * 5000 + ']}}}', 'holds a value json cannot '
                           'read here (Exceeds the limit'),
                          ('[' * 100000 + ']' * 100000, 'nests its json deeper than Python can read')):
        with open(path, 'w') as f:
            f.write(text)
        with pytest.raises(ValueError, match=re.escape(f'{path} {message}')):
            build(ytvos_cfg(root))


def test_ytvos_obj_id_as_int_or_string(ytvos):
    root, manifest, vid, path = ytvos
    as_str = build(ytvos_cfg(root))
    edit_json(path, lambda d: [e.update(obj_id=int(e['obj_id'])) for v in d['videos'].values()
                               for e in v['expressions'].values()])
    as_int = build(ytvos_cfg(root))
    infos = [as_int.get_data_info(i) for i in range(len(as_int))]
    assert infos == [as_str.get_data_info(i) for i in range(len(as_str))]
    assert [i['ref_obj_id'] for i in infos if i['video_id'] == vid] == \
        [int(e['obj_id']) for e in manifest['train'][vid]['expressions'].values()]


def test_ytvos_expression_without_exp(ytvos):
    root, _, vid, path = ytvos
    edit_json(path, lambda d: d['videos'][vid]['expressions']['0'].pop('exp'))
    with raises(ValueError, f'{path}: field videos["{vid}"]["expressions"]["0"] lacks the key "exp" '
                            "(found keys ['obj_id'])"):
        build(ytvos_cfg(root))


def test_ytvos_empty_videos(ytvos):
    root, _, _, path = ytvos
    edit_json(path, lambda d: d.update(videos={}))
    with raises(ValueError, f'{path}: field videos is empty, expected at least one video'):
        build(ytvos_cfg(root))


def test_ytvos_video_entry_fields(ytvos):
    root, _, vid, path = ytvos
    edit_json(path, lambda d: d['videos'][vid].update(frames='00000'))
    with raises(ValueError, f'{path}: field videos["{vid}"]["frames"] must be a list of frame names (str), got str'):
        build(ytvos_cfg(root))
    edit_json(path, lambda d: d['videos'][vid].update(frames=[], expressions=[]))
    with raises(ValueError, f'{path}: video \'{vid}\' lists no frames (field videos["{vid}"]["frames"] is empty)'):
        build(ytvos_cfg(root))
    edit_json(path, lambda d: d['videos'][vid].update(frames=['00000']))
    with raises(ValueError, f'{path}: field videos["{vid}"]["expressions"] must be a dict {{<exp_id>: '
                            '{"exp": ..., "obj_id": ...}}, got list []'):
        build(ytvos_cfg(root))


def test_ytvos_valid_split_checked_too(ytvos):
    root, manifest, _, _ = ytvos
    path = osp.join(root, 'meta_expressions', 'valid', 'meta_expressions.json')
    vid = sorted(manifest['valid'])[0]
    edit_json(path, lambda d: d['videos'][vid]['expressions']['0'].update(exp='   '))
    with raises(ValueError, f"{path}: video '{vid}' expression '0': empty referring expression '   '"):
        build(ytvos_cfg(root, split='valid'))


def test_ytvos_presence_cache_not_a_dict(ytvos, tmp_path):
    root = ytvos[0]
    cache = str(tmp_path / 'presence.json')
    with open(cache, 'w') as f:
        json.dump([1, 2], f)
    with raises(ValueError, f'{cache}: field <top level> must be a dict {{<video_id>: {{<frame>: [object ids]}}}} '
                            '(delete the file to rebuild it), got list [1, 2]'):
        build(ytvos_cfg(root, presence_cache=cache))


# ------------------------------------------------------------------------------------------ mask sizes
def test_ytvos_masks_are_checked_from_their_header_before_decoding(ytvos):
    """A mask that is not a PNG (whatever its name) or that declares more pixels than a mask may have is
    refused before it is decoded (a 137 KB palette PNG declaring 12000 x 12000 took ~300 MB to decode)."""
    import struct
    import zlib
    root, manifest, vid, _ = ytvos
    frames = manifest['train'][vid]['frames']
    png = osp.join(root, 'train', 'Annotations', vid, f'{frames[1]}.png')
    ds = build(ytvos_cfg(root))
    i = next(k for k in range(len(ds)) if ds.get_data_info(k)['video_id'] == vid)
    cv2.imwrite(png + '.tiff', np.ones((32, 40), np.uint8))
    os.replace(png + '.tiff', png)
    with raises(ValueError, f"unreadable video '{vid}' frame '{frames[1]}': mask {png}: not a PNG file"):
        ds[i]

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    header = struct.pack('>IIBBBBB', 12000, 12000, 8, 0, 0, 0, 0)  # 12000 x 12000, 8-bit grey
    with open(png, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(b''))
                + chunk(b'IEND', b''))
    with raises(ValueError, f"video '{vid}' frame '{frames[1]}': mask {png} declares 12000x12000 (H x W) pixels, "
                            'more than the 67108864 a mask may have here (not decoded)'):
        ds[i]


def test_ytvos_mask_of_another_size(ytvos):
    root, manifest, vid, _ = ytvos
    frames = manifest['train'][vid]['frames']
    png = osp.join(root, 'train', 'Annotations', vid, f'{frames[2]}.png')
    jpg = osp.join(root, 'train', 'JPEGImages', vid, f'{frames[2]}.jpg')
    synthetic.write_palette_png(png, np.ones((16, 20), np.uint8))
    ds = build(ytvos_cfg(root))  # loading the list reads only the object ids of the masks
    i = next(k for k in range(len(ds)) if ds.get_data_info(k)['video_id'] == vid)
    with raises(ValueError, f"video '{vid}' frame '{frames[2]}': mask {png} is 16x20 (HxW) but its frame {jpg} "
                            'is 32x40; masks must have the size of their frames'):
        ds[i]
    # without the frames loaded first, the masks are compared with the first one
    masks_only = build(ytvos_cfg(root, pipeline=[dict(type='LoadPaletteMasks')]))
    with raises(ValueError, f"video '{vid}' frame '{frames[2]}': mask {png} is 16x20 (HxW) but the mask of frame "
                            f"'{frames[0]}' is 32x40"):
        masks_only[i]


def test_jhmdb_mask_of_another_size(tmp_path):
    import scipy.io
    root = str(tmp_path / 'jhmdb')
    manifest = synthetic.generate_jhmdb_sentences(root, num_videos=1, num_frames=5, size=(24, 32))
    vid, info = next(iter(manifest['videos'].items()))
    mat = osp.join(root, 'puppet_mask', info['action'], vid, 'puppet_mask.mat')
    scipy.io.savemat(mat, {'part_mask': np.ones((12, 16, 4), np.uint8)})
    ds = build(dict(type='JHMDBSentencesDataset', data_root=root, num_frames=3,
                    pipeline=[dict(type='LoadRVOSFrames'), dict(type='LoadJHMDBPuppetMask')]))
    with raises(ValueError, f"video '{vid}': masks read from {mat} are (12, 16) (H, W) but frames are (24, 32)"):
        ds[0]
