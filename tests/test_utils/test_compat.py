"""The stack shims (soc_mm.utils.compat) are applied by the package import alone, whichever soc_mm module
is imported first."""
import os.path as osp

import pytest

from conftest import run_python


def test_backbone_module_imported_first_gets_the_shims():
    # the backbone imports mmaction.models, which the mmaction2 1.2.0 wheel cannot import unpatched
    code = ('import soc_mm.models.backbones.video_swin as m\n'
            'print(m.VideoSwinTransformer.__mro__[1].__module__)')
    proc = run_python(code)
    assert proc.stdout.split()[-1] == 'mmaction.models.backbones.swin'


def test_mmaction_models_imported_before_soc_mm():
    """The broken mmaction2 wheel: an ``import mmaction.models`` that ran (and failed) before ``soc_mm`` is
    recovered when soc_mm is imported (the stand-in is installed, mmaction.models imported again)."""
    code = ('try:\n'
            '    import mmaction.models\n'
            'except ImportError as error:\n'
            '    print("first import failed:", error)\n'
            'import soc_mm\n'
            'import mmaction.models\n'
            'from soc_mm.models.backbones.video_swin import VideoSwinTransformer\n'
            'print("recovered", VideoSwinTransformer.__mro__[1].__module__)\n')
    proc = run_python(code)
    lines = proc.stdout.splitlines()
    assert lines[-1] == 'recovered mmaction.models.backbones.swin'
    if len(lines) == 2:  # the wheel without the drn folder (a source install imports fine)
        assert "first import failed: No module named 'mmaction.models.localizers.drn'" in lines[0]


def test_mmaction_half_imported_names_the_cause_and_fix():
    """When the earlier failure cannot be recovered, ``import soc_mm`` says why and what to do."""
    import importlib.util
    spec = importlib.util.find_spec('mmaction')
    if osp.isdir(osp.join(list(spec.submodule_search_locations)[0], 'models', 'localizers', 'drn')):
        pytest.skip('mmaction2 installed from source (with the drn module): nothing fails')
    code = ('import sys\n'
            'try:\n'
            '    import mmaction.models\n'  # fails, leaving its finished submodules behind
            'except ImportError:\n'
            '    pass\n'
            # modules that cannot be imported again
            "sys.modules['mmaction.models.localizers.drn'] = sys.modules['mmaction.models.localizers.drn.drn'] = None\n"
            'import soc_mm\n')
    proc = run_python(code, check=False)
    assert proc.returncode != 0
    assert 'MMActionImportOrderError: mmaction.models was imported before soc_mm and failed: the mmaction2 1.2.0 ' \
           'wheel does not ship mmaction/models/localizers/drn' in proc.stderr, proc.stderr[-3000:]
    assert 'Fix: import soc_mm before anything that imports mmaction' in proc.stderr
