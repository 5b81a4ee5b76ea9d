"""Installs ``soc_mm``; dependencies are read from ``requirements/runtime.txt``.

A built package (``pip install .``, ``pip wheel .``) carries ``configs/``, ``tools/`` and ``model-index.yml``
in ``soc_mm/.mim/``, where OpenMMLab's MIM (``mim train soc_mm CONFIG``, ``mim search soc_mm``), MMEngine
and ``soc_mm.get_config`` find them (the layout of mmdet and mmseg). They are copied into the build folder,
never into the source tree; an editable install reads them from the checkout instead.
"""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

#: what soc_mm/.mim holds: folders (their files with these suffixes) and single files
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')
MIM_SUFFIXES = ('.py', '.sh', '.yml', '.md')


def parse_requirements(name):
    """Return the requirement lines of ``requirements/<name>``, comments dropped."""
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


def mim_files(root):
    """``(source, path inside .mim)`` of every file the package carries in ``soc_mm/.mim``, sorted.

    Raises FileNotFoundError naming an item of ``MIM_ITEMS`` that ``root`` lacks (e.g. an sdist
    built without MANIFEST.in), so that a package without its configs is never built.
    """
    files = []
    for item in MIM_ITEMS:
        path = root / item
        if path.is_file():
            files.append((path, Path(item)))
        elif path.is_dir():
            files += [(f, f.relative_to(root)) for f in sorted(path.rglob('*'))
                      if f.is_file() and f.suffix in MIM_SUFFIXES and '__pycache__' not in f.parts]
        else:
            raise FileNotFoundError(f'setup.py: {path} is missing; soc_mm/.mim must carry {", ".join(MIM_ITEMS)}')
    return files


class BuildPyWithMim(build_py):
    """``build_py`` that also copies ``MIM_ITEMS`` into ``<build_lib>/soc_mm/.mim`` (replacing an older
    copy there), so that wheels and ``pip install .`` ship them. Skipped for editable installs: the
    package then runs from the checkout, where ``soc_mm.get_config`` finds ``configs/`` directly."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = Path(self.build_lib) / 'soc_mm' / '.mim'
        if target.exists():
            shutil.rmtree(target)
        for src, rel in mim_files(HERE.resolve()):
            dst = target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


setup(
    name='soc_mm',
    version=(HERE / 'soc_mm' / 'version.py').read_text().split("'")[1],
    description='SOC (NeurIPS 2023) referring video object segmentation for OpenMMLab',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['soc_mm', 'soc_mm.*']),
    python_requires='>=3.9',
    install_requires=parse_requirements('runtime.txt'),
    extras_require={'tests': parse_requirements('tests.txt')},
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
