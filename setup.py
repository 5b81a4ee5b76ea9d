"""Installs ``soc_mm``; dependencies are read from ``requirements/runtime.txt``."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def parse_requirements(name):
    """Return the requirement lines of ``requirements/<name>``, comments dropped."""
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


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
    zip_safe=False,
)
