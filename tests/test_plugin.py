"""The plugin in the OpenMMLab stack: imports, registries and scopes, custom_imports from mmdet, CPU distributed
launch."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import REPO_ROOT, TESTS_DIR, run_python, subprocess_env


def test_import_keeps_torchvision_and_timm_out():
    proc = run_python(
        'import sys, soc_mm, mmaction.models, mmdet.models, mmseg.models\n'
        'bad = [m for m in ("torchvision", "timm") if m in sys.modules]\n'
        'print("LOADED", bad)\n')
    assert 'LOADED []' in proc.stdout


def test_mmaction_models_import_after_soc_mm():
    proc = run_python('import soc_mm, mmaction.models\n'
                       'from mmaction.models import SwinTransformer3D\nprint(SwinTransformer3D.__name__)')
    assert 'SwinTransformer3D' in proc.stdout


def test_registries_are_children_of_mmengine_roots():
    import mmengine.registry as root
    from soc_mm import registry
    for name in ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'VISUALIZERS', 'DATA_SAMPLERS',
                 'TASK_UTILS', 'HOOKS', 'MODEL_WRAPPERS', 'LOG_PROCESSORS'):
        ours = getattr(registry, name)
        assert ours.scope == 'soc_mm', name
        assert ours.parent is getattr(root, name), name


def test_soc_mm_scope_builds_mmaction_and_mmcv_modules_on_cpu():
    import soc_mm  # noqa: F401
    from soc_mm.registry import MODELS
    cfg = Config(dict(
        default_scope='soc_mm',
        backbone=dict(type='mmaction.SwinTransformer3D', arch='tiny', patch_size=(1, 4, 4),
                      window_size=(8, 7, 7), out_indices=(0, 1, 2, 3), pretrained2d=False),
        # mmcv registers its ops in MMEngine's root MODELS: found through the parent.
        attn=dict(type='MultiScaleDeformableAttention', embed_dims=32, num_heads=4,
                  num_levels=1, num_points=2, batch_first=True)))
    init_default_scope(cfg.default_scope)
    backbone = MODELS.build(cfg.backbone)
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 2, 64, 64))
    assert [f.shape[1] for f in feats] == [96, 192, 384, 768]
    assert feats[0].shape[-2:] == (16, 16) and feats[3].shape[-2:] == (2, 2)

    attn = MODELS.build(cfg.attn)
    from mmcv.ops import MultiScaleDeformableAttention
    assert type(attn) is MultiScaleDeformableAttention
    value = torch.randn(1, 16, 32)
    query = torch.randn(1, 3, 32)
    out = attn(query=query, value=value, reference_points=torch.rand(1, 3, 1, 2),
               spatial_shapes=torch.tensor([[4, 4]]), level_start_index=torch.tensor([0]))
    assert out.shape == (1, 3, 32) and torch.isfinite(out).all()


def test_mmdet_scope_custom_imports_builds_soc_mm_module(tmp_path):
    cfg_file = tmp_path / 'mmdet_cfg.py'
    cfg_file.write_text(
        "default_scope = 'mmdet'\n"
        "custom_imports = dict(imports=['soc_mm'], allow_failed_imports=False)\n"
        "voc = dict(type='soc_mm.VOC', embed_dims=32, num_heads=4, num_encoder_layers=1,\n"
        "           num_decoder_layers=1, feedforward_channels=64, num_queries=3,\n"
        "           num_frame_queries=3)\n")
    proc = run_python(
        'from mmengine.config import Config\n'
        'from mmengine.registry import init_default_scope\n'
        'from mmdet.registry import MODELS\n'
        f'cfg = Config.fromfile({str(cfg_file)!r})\n'
        'init_default_scope(cfg.default_scope)\n'
        'voc = MODELS.build(cfg.voc)\n'
        'print(type(voc).__module__, type(voc).__name__)\n')
    assert 'soc_mm.' in proc.stdout and ' VOC' in proc.stdout


def test_dist_train_two_processes_on_cpu_then_resume(tmp_path):
    """2-process gloo run of tools/dist_train.sh, then resume from its checkpoint."""
    config = osp.join(TESTS_DIR, 'data', 'configs', 'toy_train.py')
    env = subprocess_env()
    env['PYTHON'] = sys.executable
    env['PORT'] = '29517'
    work_dir = tmp_path / 'work'
    cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), config, '2',
           '--work-dir', str(work_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                          cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpts = sorted(glob.glob(str(work_dir / 'epoch_*.pth')))
    assert [osp.basename(c) for c in ckpts] == ['epoch_1.pth', 'epoch_2.pth']
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert any('world_size: 2' in open(f).read() or 'Distributed launcher: pytorch' in open(f).read()
               for f in logs)

    # Resume from epoch 1 and train to epoch 3 (the saved message hub and optimizer load safely).
    env['PORT'] = '29518'
    cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), config, '2',
           '--work-dir', str(work_dir), '--resume', ckpts[0],
           '--cfg-options', 'train_cfg.max_epochs=3']
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                          cwd=REPO_ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'resumed epoch: 1' in out
    assert osp.exists(work_dir / 'epoch_3.pth')
    ckpt = torch.load(work_dir / 'epoch_3.pth', weights_only=True)
    assert ckpt['meta']['epoch'] == 3


# (importing package, forbidden imports, why). A forbidden name matches itself and its submodules;
# the bare package 'soc_mm' (whose __init__ imports every sub-package) matches only itself.
IMPORT_RULES = [
    ('soc_mm.models', ('soc_mm', 'soc_mm.datasets', 'soc_mm.evaluation', 'soc_mm.official', 'soc_mm.apis'),
     'the model reads its data through soc_mm.structures; metrics, official code and the API sit above it'),
    ('soc_mm.models.layers', ('soc_mm.models.detectors',), 'layers are the detector\'s parts, not its users'),
    ('soc_mm.structures', ('soc_mm', 'soc_mm.models', 'soc_mm.datasets', 'soc_mm.evaluation', 'soc_mm.apis',
                           'soc_mm.official'), 'the data contract between datasets, model and metrics'),
    ('soc_mm.utils', ('soc_mm', 'soc_mm.models', 'soc_mm.official'), 'utilities sit below everything'),
    ('soc_mm', ('soc_mm.official',), 'the official-code compatibility is for tools and tests only'),
]
IMPORT_RULE_EXCEPTIONS = {('soc_mm', 'soc_mm.official'): 'soc_mm.official'}  # official may import itself


def module_name(path, root):
    """'soc_mm/models/__init__.py' -> 'soc_mm.models'; 'soc_mm/models/soc.py' -> 'soc_mm.models.soc'."""
    parts = osp.relpath(path, root)[:-len('.py')].split(osp.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_names(path, root):
    """Absolute names a source file imports (``from a import b`` gives ``a`` and ``a.b``; relative
    imports resolved against the file's package), anywhere in the file (function-level too)."""
    import ast
    name = module_name(path, root)
    package = name if osp.basename(path) == '__init__.py' else name.rpartition('.')[0]
    names = set()
    for node in ast.walk(ast.parse(open(path).read(), filename=path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split('.')
                if node.level - 1 >= len(parts):
                    raise ValueError(f'{path}: relative import beyond the top package (level {node.level})')
                base = parts[:len(parts) - (node.level - 1)]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f'{module}.{alias.name}' for alias in node.names if alias.name != '*')
    return names


def import_violations(root):
    """[(module, imported name, why)] for every import of a package module against ``IMPORT_RULES``."""
    def matches(name, forbidden):
        return name == forbidden or (forbidden != 'soc_mm' and name.startswith(forbidden + '.'))

    def inside(module, package):
        return module == package or module.startswith(package + '.')

    violations = []
    for path in sorted(glob.glob(osp.join(root, 'soc_mm', '**', '*.py'), recursive=True)):
        module = module_name(path, root)
        for name in sorted(imported_names(path, root)):
            for package, forbidden, why in IMPORT_RULES:
                if not inside(module, package):
                    continue
                for bad in forbidden:
                    allowed_inside = IMPORT_RULE_EXCEPTIONS.get((package, bad))
                    if matches(name, bad) and not (allowed_inside and inside(module, allowed_inside)):
                        violations.append((module, name, why))
    return violations


def test_import_directions_of_the_whole_package():
    """models never import datasets / evaluation / official / apis (nor the package root), layers never
    the detectors, structures nothing above them, utils nothing above them, and only soc_mm.official
    imports soc_mm.official."""
    assert import_violations(REPO_ROOT) == []


def test_import_direction_check_finds_violations(tmp_path):
    """The check above can fail: each rule catches a planted import, relative or absolute."""
    files = {
        'soc_mm/__init__.py': '',
        'soc_mm/models/__init__.py': 'from . import layers\n',
        'soc_mm/models/inference/run.py': 'def f():\n    from ...datasets.sampler import clip_key\n',
        'soc_mm/models/layers/__init__.py': 'from ..detectors import soc\n',
        'soc_mm/models/layers/ok.py': 'from . import other\nfrom ..inference import run\n',
        'soc_mm/structures/meta.py': 'import soc_mm.models.detectors\n',
        'soc_mm/engine/hook.py': 'from soc_mm.official.reference import harness\n',
        'soc_mm/official/reference.py': 'from .checkpoint import load\nfrom soc_mm.models import SOC\n',
        'soc_mm/utils/misc.py': 'from soc_mm import registry\n',
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = {(module, name) for module, name, _ in import_violations(str(tmp_path))}
    assert found == {
        ('soc_mm.models.inference.run', 'soc_mm.datasets.sampler'),
        ('soc_mm.models.inference.run', 'soc_mm.datasets.sampler.clip_key'),
        ('soc_mm.models.layers', 'soc_mm.models.detectors'),
        ('soc_mm.models.layers', 'soc_mm.models.detectors.soc'),
        ('soc_mm.structures.meta', 'soc_mm.models.detectors'),
        ('soc_mm.engine.hook', 'soc_mm.official.reference'),
        ('soc_mm.engine.hook', 'soc_mm.official.reference.harness'),
        ('soc_mm.utils.misc', 'soc_mm'),
    }
    with pytest.raises(ValueError, match='beyond the top package'):
        (tmp_path / 'soc_mm' / 'bad.py').write_text('from .. import x\n')
        import_violations(str(tmp_path))


def test_tests_never_touch_sys_path():
    touching = [osp.relpath(p, REPO_ROOT) for p in glob.glob(osp.join(TESTS_DIR, '**', '*.py'), recursive=True)
                if 'sys.path.' in open(p).read() and not p.endswith('test_plugin.py')]
    assert touching == []


def test_import_changes_no_mmengine_file_backend():
    """Importing soc_mm adds its own file backend name and replaces none of MMEngine's (no prefix)."""
    proc = run_python(
        'from mmengine.fileio.backends import backends, prefix_to_backends\n'
        'before, prefixes = dict(backends), dict(prefix_to_backends)\n'
        'import soc_mm\n'
        'print("ADDED", sorted(set(backends) - set(before)))\n'
        'print("CHANGED", sorted(k for k in before if backends[k] is not before[k]))\n'
        'print("PREFIXES", prefix_to_backends == prefixes)\n')
    assert "ADDED ['soc_mm_atomic_local']" in proc.stdout
    assert 'CHANGED []' in proc.stdout and 'PREFIXES True' in proc.stdout


def test_atomic_backend_name_taken_by_another_class_is_an_error(monkeypatch):
    from mmengine.fileio import LocalBackend
    from mmengine.fileio.backends import backends
    from soc_mm.engine import atomic_io
    atomic_io._register_atomic_backend()  # again for its own class: fine (a re-executed module)
    assert backends[atomic_io.ATOMIC_LOCAL_BACKEND] is atomic_io.AtomicLocalBackend
    monkeypatch.setitem(backends, atomic_io.ATOMIC_LOCAL_BACKEND, LocalBackend)
    with pytest.raises(RuntimeError, match="'soc_mm_atomic_local' is taken by mmengine.*LocalBackend"):
        atomic_io._register_atomic_backend()
    assert backends[atomic_io.ATOMIC_LOCAL_BACKEND] is LocalBackend  # left as it was
