"""Check that soc_mm's SOC reproduces the official model on a golden fixture folder.

Usage: python tools/analysis_tools/compare_with_reference.py FIXTURE_DIR [FIXTURE_DIR ...]
       (a folder of fixture folders, such as tests/data/soc_reference, means every fixture in it)

Builds our model from the fixture's config.json (with the fused kernels, the default, and with the
reference kernels: --kernels), converts its official state dict with
our converter, runs eval and train forwards and the loss on inputs.pt, prints the max
|diff| of every output and loss term, and exits non-zero if an output differs by more
than 1e-4 * max(1, max|reference|), a loss term by more than 1e-4 relative, a loss weight
differs from the official coefficient, the matched indices differ, or the fixture's official
configuration holds a setting that soc_mm.official.config cannot translate.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List

import torch


def expand_fixture_dir(path: str) -> List[str]:
    """A FIXTURE_DIR argument -> the fixture folders it names: itself (it has config.json), the
    fixture folders inside it (a folder of fixtures), or none (the shared ``common/`` weights folder
    next to the fixtures, e.g. from a ``*/`` glob). Exits on anything else."""
    if osp.isfile(osp.join(path, 'config.json')):
        return [path]
    is_weights_folder = osp.isfile(osp.join(path, 'official_state_dict.pt'))
    if osp.isdir(path) and not is_weights_folder:
        children = [osp.join(path, d) for d in sorted(os.listdir(path))]
        children = [d for d in children if osp.isfile(osp.join(d, 'config.json'))]
        if children:
            return children
    if is_weights_folder and osp.basename(osp.normpath(path)) == 'common':
        return []
    sys.exit(f'{path}: not a fixture folder (no config.json)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('fixture_dirs', nargs='+', help='fixture folder(s) (e.g. tests/data/soc_reference/ytvos_b2_t3_nc1_w0)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (fixtures: 1)')
    parser.add_argument('--kernels', choices=['fast', 'reference', 'both'], default='both',
                        help="the model's kernels: fused (model.fast_kernels=True, the default path), the "
                             "reference (official) ones, or both (default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import soc_mm  # noqa: F401  (registries)
    from soc_mm.official import OfficialCheckpointError, OfficialConfigError
    from soc_mm.official.reference import compare_fixture

    fixture_dirs = [d for path in args.fixture_dirs for d in expand_fixture_dir(path)]
    failed = []
    kernels = ['fast', 'reference'] if args.kernels == 'both' else [args.kernels]
    for fixture_dir in fixture_dirs:
        for kernel in kernels:
            print(f'== {fixture_dir} ({kernel} kernels)')
            print(f'{"quantity":60s} {"max|diff|":>12s} {"tolerance":>12s}  ok')
            try:
                rows = compare_fixture(fixture_dir, fast_kernels=kernel == 'fast')
            except (OfficialConfigError, OfficialCheckpointError) as err:
                print(f'error: {err}')
                failed.append(f'{fixture_dir}: {err}')
                break
            for row in rows:
                print(f'{row.name:60s} {row.max_abs_diff:12.3e} {row.tolerance:12.3e}  '
                      f'{"yes" if row.ok else "NO"}')
                if not row.ok:
                    failed.append(f'{fixture_dir} ({kernel} kernels): {row.name}')
    if failed:
        print('FAILED:\n  ' + '\n  '.join(failed))
        sys.exit(1)
    print('all quantities within tolerance')


if __name__ == '__main__':
    main()
