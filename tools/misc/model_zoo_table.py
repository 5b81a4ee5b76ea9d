"""Print the README's model-zoo table (Markdown) from model-index.yml and the metafiles it imports.

    python tools/misc/model_zoo_table.py                 # the table of this checkout (or installed package)
    python tools/misc/model_zoo_table.py --index model-index.yml

One row per metafile model: its collection (SOC / SOC++), config, official setting, backbone, the official
results (``—``: no published number tied to that checkpoint) and the official checkpoint it converts.
The README holds this output between its ``model-zoo-table`` markers (tests/test_tools/test_model_index.py
checks they are equal): edit a metafile, then paste the new output there.
"""
import argparse
import os.path as osp
import sys

import yaml

#: model-index.yml of the tree this tool is in (a checkout, or soc_mm/.mim of an installed package)
DEFAULT_INDEX = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'model-index.yml')
COLUMNS = ('Model', 'Config', 'Official setting', 'Backbone', 'Official results', 'Official checkpoint')


def _load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def load_models(index_path):
    """``[(collection name, model dict), ...]`` in the order of model-index.yml's ``Import`` list and of
    each metafile's ``Models``; a model whose ``In Collection`` its metafile does not define is an error."""
    root = osp.dirname(osp.abspath(index_path))
    index = _load_yaml(index_path)
    if not isinstance(index, dict) or not isinstance(index.get('Import'), list):
        raise ValueError(f'{index_path}: expected a mapping with an `Import` list of metafiles')
    models = []
    for rel in index['Import']:
        path = osp.join(root, rel)
        meta = _load_yaml(path)
        collections = {c['Name'] for c in meta.get('Collections', [])}
        for model in meta.get('Models', []):
            collection = model.get('In Collection')
            if collection not in collections:
                raise ValueError(f'{rel}: model {model.get("Name")!r} is in collection {collection!r}, '
                                 f'which the file does not define (it defines {sorted(collections)})')
            models.append((collection, model))
    return models


def _number(value):
    return f'{value:.1f}' if isinstance(value, float) else str(value)


def results_cell(model):
    """``'Ref-YouTube-VOS: J&F 67.3, J 65.3, F 69.3'`` (datasets joined by ``; ``), ``'—'`` without results."""
    parts = []
    for result in model.get('Results') or []:
        metrics = ', '.join(f'{name} {_number(value)}' for name, value in result['Metrics'].items())
        parts.append(f'{result["Dataset"]}: {metrics}')
    return '; '.join(parts) if parts else '—'


def checkpoint_cell(model):
    """A link to the official checkpoint (``Converted From.Weights``) named after the official code."""
    source = model.get('Converted From') or {}
    url = source.get('Weights')
    if not url:
        return '—'
    code = source.get('Code', '')
    name = code.rstrip('/').rsplit('/', 1)[-1] if code else 'official'
    return f'[{name}]({url})'


def model_zoo_table(index_path=DEFAULT_INDEX):
    """The Markdown table (one line per row, no trailing newline)."""
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + ' --- |' * len(COLUMNS)]
    for collection, model in load_models(index_path):
        meta = model.get('Metadata', {})
        config = model['Config']
        cells = [collection, f'[`{osp.basename(config)}`]({config})', meta.get('Official Setting', '—'),
                 meta.get('Backbone', '—'), results_cell(model), checkpoint_cell(model)]
        lines.append('| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--index', default=DEFAULT_INDEX, help='model-index.yml (default: %(default)s)')
    args = parser.parse_args(argv)
    try:
        print(model_zoo_table(args.index))
    except (OSError, ValueError, KeyError, yaml.YAMLError) as err:
        print(f'model_zoo_table: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
