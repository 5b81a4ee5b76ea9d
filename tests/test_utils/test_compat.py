"""The stack shims (soc_mm.utils.compat) are applied by the package import alone, whichever soc_mm module
is imported first."""
import subprocess
import sys

from conftest import subprocess_env


def test_backbone_module_imported_first_gets_the_shims():
    # the backbone imports mmaction.models, which the mmaction2 1.2.0 wheel cannot import unpatched
    code = ('import soc_mm.models.backbones.video_swin as m\n'
            'print(m.VideoSwinTransformer.__mro__[1].__module__)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == 'mmaction.models.backbones.swin'
