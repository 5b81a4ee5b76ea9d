"""model-index.yml and the metafiles (configs/*/metafile.yml): every entry's config exists, loads and builds
its model, agrees with the entry (model, backbone, schedule, batch, evaluated dataset, conversion command),
every checkpoint of the SOC README's model zoo has an entry, and the README's model-zoo table is the output
of tools/misc/model_zoo_table.py. ``mim search soc_mm`` needs an installed package: it is run by
test_wheel_install.py."""
import glob
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest
import torch
import yaml
from mmengine.registry import DefaultScope

from conftest import REPO_ROOT, TEXT_ENCODER_DIR
import soc_mm
from soc_mm.registry import MODELS

TOOL = osp.join(REPO_ROOT, 'tools', 'misc', 'model_zoo_table.py')
CONVERTER = 'tools/model_converters/soc_official_to_mm.py'
README_START = '<!-- model-zoo-table: the output of tools/misc/model_zoo_table.py -->'
README_END = '<!-- end of model-zoo-table -->'

#: collection -> (model type, official code)
COLLECTIONS = {'SOC': ('SOC', 'https://github.com/RobertLuo1/NeurIPS2023_SOC'),
               'SOC++': ('SOCPlusPlus', 'https://github.com/yongliu20/MRVS_SOC')}
#: the model zoo of the official SOC README: (setting, backbone) of each published checkpoint
SOC_ZOO = {('a2d_from_scratch', 'Video-Swin-T'), ('a2d_with_pretrain', 'Video-Swin-T'),
           ('a2d_with_pretrain', 'Video-Swin-B'), ('ytb_from_scratch', 'Video-Swin-T'),
           ('ytb_with_pretrain', 'Video-Swin-T'), ('ytb_with_pretrain', 'Video-Swin-B'),
           ('ytb_joint_train', 'Video-Swin-T'), ('ytb_joint_train', 'Video-Swin-B')}
#: SOC++ publishes its A2D-Sentences and MeViS models (official README)
SOCPP_ZOO = {'scripts/train_a2d.sh', 'scripts/train_mevis.sh'}
#: result dataset -> (test dataset type of the config, metric names)
DATASETS = {'Ref-YouTube-VOS': ('RefYouTubeVOSDataset', {'J&F', 'J', 'F'}),
            'Ref-DAVIS17': ('RefDAVIS17Dataset', {'J&F', 'J', 'F'}),
            'MeViS': ('MeViSDataset', {'J&F', 'J', 'F'}),
            'A2D-Sentences': ('A2DSentencesDataset', {'mAP', 'Overall IoU', 'Mean IoU'}),
            'JHMDB-Sentences': ('JHMDBSentencesDataset', {'mAP', 'Overall IoU', 'Mean IoU'})}
BACKBONE_ARCH = {'Video-Swin-T': ('tiny', 96), 'Video-Swin-B': ('base', 128)}


def load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def load_entries():
    index = load_yaml(osp.join(REPO_ROOT, 'model-index.yml'))
    entries = []
    for rel in index['Import']:
        for model in load_yaml(osp.join(REPO_ROOT, rel))['Models']:
            entries.append(dict(model, _metafile=rel))
    return entries


ENTRIES = load_entries()
BY_NAME = {e['Name']: e for e in ENTRIES}


def is_evaluation_only(entry):
    return '_test-' in entry['Name']


def training_entry_of(entry):
    """The training entry whose official checkpoint ``entry`` evaluates: its official setting is the
    training entry's plus `` (<dataset> evaluation)``, in the same collection, with the same checkpoint link."""
    setting = entry['Metadata']['Official Setting'].split(' (')[0]
    matches = [e for e in ENTRIES if not is_evaluation_only(e) and e['In Collection'] == entry['In Collection']
               and e['Metadata']['Official Setting'] == setting and e['Metadata']['Backbone'] ==
               entry['Metadata']['Backbone']]
    assert len(matches) == 1, f'{entry["Name"]}: {len(matches)} training entries of setting {setting!r}'
    assert matches[0]['Converted From'] == entry['Converted From']
    return matches[0]


def build_config(entry):
    cfg = soc_mm.get_config(entry['Config'])
    if not osp.isdir(cfg.model.text_encoder.model_path):  # pretrained/roberta-base is not in the checkout
        cfg.model.text_encoder.model_path = TEXT_ENCODER_DIR
    cfg.model.backbone.init_cfg = None  # no Kinetics checkpoint either
    return cfg


def test_model_index_imports_every_metafile():
    index = load_yaml(osp.join(REPO_ROOT, 'model-index.yml'))
    metafiles = sorted(osp.relpath(p, REPO_ROOT)
                       for p in glob.glob(osp.join(REPO_ROOT, 'configs', '*', 'metafile.yml')))
    assert sorted(index['Import']) == metafiles == ['configs/soc/metafile.yml', 'configs/soc_plus_plus/metafile.yml']
    assert len(BY_NAME) == len(ENTRIES), 'model names must be unique'
    for rel in metafiles:
        names = [c['Name'] for c in load_yaml(osp.join(REPO_ROOT, rel))['Collections']]
        assert all(e['In Collection'] in names for e in ENTRIES if e['_metafile'] == rel)


def test_every_official_checkpoint_has_one_training_entry():
    soc = [e for e in ENTRIES if e['In Collection'] == 'SOC' and not is_evaluation_only(e)]
    assert sorted((e['Metadata']['Official Setting'], e['Metadata']['Backbone']) for e in soc) == sorted(SOC_ZOO)
    socpp = [e for e in ENTRIES if e['In Collection'] == 'SOC++' and not is_evaluation_only(e)]
    assert sorted(e['Metadata']['Official Setting'] for e in socpp) == sorted(SOCPP_ZOO)
    soc_links = [e['Converted From']['Weights'] for e in soc]
    assert len(set(soc_links)) == len(soc_links) == 8  # one file per setting and backbone


@pytest.mark.parametrize('name', sorted(BY_NAME))
def test_entry_agrees_with_its_config(name):
    entry = BY_NAME[name]
    meta = entry['Metadata']
    model_type, code = COLLECTIONS[entry['In Collection']]
    assert entry['Config'] == f'{osp.dirname(entry["_metafile"])}/{name}.py'  # configs/<dir>/<Name>.py
    assert osp.isfile(osp.join(REPO_ROOT, entry['Config']))
    cfg = soc_mm.get_config(entry['Config'])
    assert cfg.model.type == model_type
    arch, _ = BACKBONE_ARCH[meta['Backbone']]
    assert cfg.model.backbone.arch == arch
    if is_evaluation_only(entry):
        assert cfg.get('train_cfg') is None and 'Epochs' not in meta and 'Batch Size' not in meta
        trained = training_entry_of(entry)
        assert (meta['Backbone'], meta['Training Data']) == \
            (trained['Metadata']['Backbone'], trained['Metadata']['Training Data'])
        evaluated = re.fullmatch(re.escape(trained['Metadata']['Official Setting']) + r' \((.+) evaluation\)',
                                 meta['Official Setting'])
        assert evaluated and cfg.test_dataloader.dataset.type == DATASETS[evaluated.group(1)][0]
        checkpoint_model = soc_mm.get_config(trained['Config']).model.to_dict()
        model = cfg.model.to_dict()
        for options in ('train_cfg', 'test_cfg'):  # the checkpoint's modules, whatever the inference options
            model.pop(options), checkpoint_model.pop(options)
        assert model == checkpoint_model
    else:
        trained = entry
        assert cfg.train_cfg.max_epochs == meta['Epochs']
        gpus, clips = map(int, re.search(r'_(\d+)xb(\d+)-', name).groups())
        assert cfg.train_dataloader.batch_size == clips and meta['Batch Size'] == gpus * clips
    for result in entry.get('Results', []):
        dataset_type, metric_names = DATASETS[result['Dataset']]
        assert cfg.test_dataloader.dataset.type == dataset_type, f'{name} does not test on {result["Dataset"]}'
        assert result['Task'] == 'Referring Video Object Segmentation'
        assert set(result['Metrics']) <= metric_names
        assert all(isinstance(v, float) and 0 < v < 100 for v in result['Metrics'].values())
    source = entry['Converted From']
    assert source['Code'] == code and source['Weights'].startswith('https://drive.google.com/')
    assert shlex.split(entry['Conversion']) == [
        'python', CONVERTER, 'SRC', f'checkpoints/{trained["Name"]}.pth', '--config', entry['Config']]
    assert osp.isfile(osp.join(REPO_ROOT, CONVERTER))


@pytest.mark.parametrize('name', sorted(n for n, e in BY_NAME.items() if not is_evaluation_only(e)))
def test_entry_model_builds(name):
    """The full-size model of each official checkpoint builds (the tiny RoBERTa replaces the absent
    roberta-base folder; evaluation-only entries have their checkpoint's model, checked above)."""
    torch.set_num_threads(1)
    entry = BY_NAME[name]
    cfg = build_config(entry)
    with DefaultScope.overwrite_default_scope('soc_mm'):
        model = MODELS.build(cfg.model)
    assert type(model).__name__ == COLLECTIONS[entry['In Collection']][0]
    assert model.backbone.embed_dims == BACKBONE_ARCH[entry['Metadata']['Backbone']][1]
    assert model.embed_dims == 256 and model.num_queries == cfg.model.num_queries


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=120)


def test_readme_model_zoo_table_is_the_tool_output():
    result = run_tool()
    assert result.returncode == 0, result.stderr
    with open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    assert readme.count(README_START) == 1 and readme.count(README_END) == 1
    block = readme.split(README_START)[1].split(README_END)[0]
    assert block.strip() == result.stdout.strip(), \
        'README.md model-zoo table is out of date: paste the output of python tools/misc/model_zoo_table.py'
    rows = result.stdout.strip().splitlines()[2:]
    assert len(rows) == len(ENTRIES)
    assert '| SOC | [`soc_swin-b_refcoco-joint_8xb1-30e_refytvos.py`](configs/soc/soc_swin-b_refcoco-joint_8xb1-30e_' \
        'refytvos.py) | ytb_joint_train | Video-Swin-B | Ref-YouTube-VOS: J&F 67.3, J 65.3, F 69.3 | ' \
        '[NeurIPS2023_SOC](https://drive.google.com/file/d/1SaDLcQOn_a1L-Bw8LGB2CiQIGkZAO3Wu/view?usp=sharing) |' \
        in rows


def test_tool_refuses_a_model_of_an_undefined_collection(tmp_path):
    (tmp_path / 'meta.yml').write_text('Collections:\n  - Name: SOC\nModels:\n  - Name: m\n    In Collection: SOC+\n'
                                       '    Config: configs/soc/m.py\n')
    (tmp_path / 'model-index.yml').write_text('Import:\n  - meta.yml\n')
    result = run_tool('--index', str(tmp_path / 'model-index.yml'))
    assert result.returncode == 1 and result.stdout == ''
    assert "meta.yml: model 'm' is in collection 'SOC+', which the file does not define (it defines ['SOC'])" \
        in result.stderr
