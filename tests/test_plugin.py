"""The plugin in the OpenMMLab stack: imports, registries and scopes, custom_imports from mmdet, CPU distributed launch."""
import glob
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import REPO_ROOT, TESTS_DIR, subprocess_env


def _run_python(code):
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)


def test_import_keeps_torchvision_and_timm_out():
    proc = _run_python(
        'import sys, soc_mm, mmaction.models, mmdet.models, mmseg.models\n'
        'bad = [m for m in ("torchvision", "timm") if m in sys.modules]\n'
        'print("LOADED", bad)\n')
    assert proc.returncode == 0, proc.stderr
    assert 'LOADED []' in proc.stdout


def test_mmaction_models_import_after_soc_mm():
    proc = _run_python('import soc_mm, mmaction.models\n'
                       'from mmaction.models import SwinTransformer3D\nprint(SwinTransformer3D.__name__)')
    assert proc.returncode == 0, proc.stderr
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
    proc = _run_python(
        'from mmengine.config import Config\n'
        'from mmengine.registry import init_default_scope\n'
        'from mmdet.registry import MODELS\n'
        f'cfg = Config.fromfile({str(cfg_file)!r})\n'
        'init_default_scope(cfg.default_scope)\n'
        'voc = MODELS.build(cfg.voc)\n'
        'print(type(voc).__module__, type(voc).__name__)\n')
    assert proc.returncode == 0, proc.stderr
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


def _imported_modules(path):
    """Absolute names of the soc_mm modules a source file imports (relative imports resolved)."""
    import ast
    rel = osp.relpath(path, REPO_ROOT)[:-3].replace(osp.sep, '.')
    package = rel.rsplit('.', 1)[0] if not rel.endswith('__init__') else rel[:-len('.__init__')]
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            names.add(module)
            names.update(f'{module}.{alias.name}' for alias in node.names)
    return {n for n in names if n == 'soc_mm' or n.startswith('soc_mm.')}


def test_layering_utils_never_import_models_and_tests_never_touch_sys_path():
    offenders = []
    for path in glob.glob(osp.join(REPO_ROOT, 'soc_mm', 'utils', '*.py')):
        bad = [m for m in _imported_modules(path) if m.startswith(('soc_mm.models', 'soc_mm.official'))
               or m in ('soc_mm', 'soc_mm.models')]
        if bad:
            offenders.append((osp.relpath(path, REPO_ROOT), bad))
    assert offenders == []
    touching = [osp.relpath(p, REPO_ROOT) for p in glob.glob(osp.join(TESTS_DIR, '**', '*.py'), recursive=True)
                if 'sys.path.' in open(p).read() and not p.endswith('test_plugin.py')]
    assert touching == []
