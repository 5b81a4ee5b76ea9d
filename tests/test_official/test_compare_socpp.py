"""Our SOCPlusPlus reproduces every golden fixture of the official SOC++ code (tests/data/socpp_reference):
outputs, losses, matcher indices and the recorded internals, through tools/analysis_tools/compare_with_reference.py;
and the comparison can fail."""
import glob
import os.path as osp
import re
import shutil
import subprocess
import sys

import torch

from conftest import REPO_ROOT, TESTS_DIR, subprocess_env

SOCPP_ROOT = osp.join(TESTS_DIR, 'data', 'socpp_reference')
SOCPP_DIRS = sorted(d for d in glob.glob(osp.join(SOCPP_ROOT, '*')) if osp.isfile(osp.join(d, 'config.json')))
SOCPP_VARIANTS = ['a2d_b2_t3_nc1_w0', 'mevis_b1_t4_union_w0', 'ytvos_b1_t10_nc1_w0', 'ytvos_b1_t66_nc1_w0',
                  'ytvos_b2_t3_nc1_w0', 'ytvos_b2_t3_nc1_w0_p7q6', 'ytvos_b2_t3_nc1_w0_textft',
                  'ytvos_b2_t3_nc65_w0']
MAIN = 'ytvos_b2_t3_nc1_w0'
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'compare_with_reference.py')
#: internal rows every SOC++ fixture records (README "intermediates_eval.pt", `socpp` table)
INTERNAL_ROWS = ['internal.deformable_transformer.hs', 'internal.deformable_transformer.inter_references',
                 'internal.voc.voc_hs', 'internal.socpp.proxies[0]', 'internal.socpp.proxies[1]',
                 'internal.socpp.proxies[2]', 'internal.socpp.lvf_words', 'internal.socpp.frame_score_vis',
                 'internal.socpp.frame_score_diff', 'internal.socpp.frame_score', 'internal.socpp.bmrw']
#: recorded by the main variant only
MAIN_ONLY_ROWS = ['internal.socpp.v2p_out[0]', 'internal.socpp.v2p_out[1]', 'internal.socpp.v2p_out[2]',
                  'internal.socpp.voc_encoder_in', 'internal.socpp.voc_encoder_out', 'internal.socpp.query_fusion']
_ROW = re.compile(r'^(\S.*?)\s+(\S+)\s+(\S+)\s+(yes|NO)$')


def test_socpp_fixture_folders_present():
    assert [osp.basename(d) for d in SOCPP_DIRS] == SOCPP_VARIANTS


def _sections(stdout: str) -> dict:
    """The tool's report -> {'<folder> (<kernel> kernels)': {row name: ok}}."""
    sections, current = {}, None
    for line in stdout.splitlines():
        if line.startswith('== '):
            current = sections.setdefault(line[3:], {})
        elif current is not None:
            m = _ROW.match(line)
            if m and m[1] != 'quantity':
                current[m[1]] = m[4] == 'yes'
    return sections


def test_compare_tool_passes_on_every_socpp_fixture_with_both_kernels():
    """The folder of fixtures as one argument (expanded to its 8 fixture folders), both kernel sets."""
    proc = subprocess.run([sys.executable, TOOL, '--kernels', 'both', SOCPP_ROOT], capture_output=True, text=True,
                          env=subprocess_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert 'all quantities within tolerance' in proc.stdout
    sections = _sections(proc.stdout)
    assert sorted(sections) == sorted(f'{d} ({k} kernels)' for d in SOCPP_DIRS for k in ('fast', 'reference'))
    for name, rows in sections.items():
        assert rows and all(rows.values()), (name, [r for r, ok in rows.items() if not ok])
        expected = INTERNAL_ROWS + (MAIN_ONLY_ROWS if name.startswith(osp.join(SOCPP_ROOT, MAIN) + ' ') else [])
        assert [r for r in expected if r not in rows] == [], name
        # SOC++ has no eval-only path: level 0 is in the eval aux outputs, as in training
        for prefix in ('eval', 'train'):
            assert f'{prefix}.aux_outputs[0].pred_masks' in rows and f'{prefix}.pred_logit' in rows, name
        assert 'matcher_indices.final' in rows and 'matcher_indices.aux_0' in rows, name
        assert any(r.startswith('loss.loss_dice') for r in rows), name


def _perturbed_copy(tmp_path, key: str, delta: float) -> str:
    """The main fixture copied to tmp_path with ``delta`` added to the official tensor ``key``."""
    dst = tmp_path / MAIN
    shutil.copytree(osp.join(SOCPP_ROOT, MAIN), dst)
    common = tmp_path / 'common'
    shutil.copytree(osp.join(SOCPP_ROOT, 'common', 'text_encoder'), common / 'text_encoder')
    sd = torch.load(osp.join(SOCPP_ROOT, 'common', 'official_state_dict.pt'), weights_only=True)
    assert key in sd
    sd[key] = sd[key] + delta
    torch.save(sd, common / 'official_state_dict.pt')
    return str(dst)


def test_compare_detects_a_wrong_visibility_scorer_weight(tmp_path):
    """``voc.score_embd.1.weight`` (the final Linear of the visibility score): the visibility and total frame
    scores, the cluster decoder, the random walk and the heads fail; everything upstream of the cluster decoder
    and the difference score (its own scorer) stay within tolerance."""
    import soc_mm  # noqa: F401
    from soc_mm.official.reference import compare_fixture
    torch.set_num_threads(1)
    rows = {r.name: r for r in compare_fixture(_perturbed_copy(tmp_path, 'voc.score_embd.1.weight', 0.5))}
    for name in ('internal.socpp.frame_score_vis', 'internal.socpp.frame_score', 'internal.socpp.voc_encoder_out',
                 'internal.voc.voc_hs', 'internal.socpp.bmrw', 'internal.socpp.query_fusion',
                 'eval.pred_logit', 'eval.pred_masks', 'train.pred_masks', 'loss.loss_dice (loss_dice)'):
        assert not rows[name].ok, name
    for name in ('internal.deformable_transformer.hs', 'internal.deformable_transformer.inter_references',
                 'internal.socpp.proxies[0]', 'internal.socpp.proxies[2]', 'internal.socpp.v2p_out[1]',
                 'internal.socpp.lvf_words', 'internal.socpp.voc_encoder_in', 'internal.socpp.frame_score_diff',
                 'eval.text_sentence_feature', 'train.text_sentence_feature'):
        assert rows[name].ok, (name, rows[name])


def test_compare_detects_a_wrong_proxy_embedding(tmp_path):
    """``proxy_embed.weight``: the proxies from level 0 on, the updated words, the sentence feature and the
    deformable decoder (its query content is the proxies' mean) fail."""
    import soc_mm  # noqa: F401
    from soc_mm.official.reference import compare_fixture
    torch.set_num_threads(1)
    rows = {r.name: r for r in compare_fixture(_perturbed_copy(tmp_path, 'proxy_embed.weight', 0.5))}
    for name in ('internal.socpp.proxies[0]', 'internal.socpp.proxies[1]', 'internal.socpp.proxies[2]',
                 'internal.socpp.v2p_out[0]', 'internal.socpp.lvf_words', 'eval.text_sentence_feature',
                 'internal.deformable_transformer.hs', 'internal.voc.voc_hs', 'eval.pred_masks'):
        assert not rows[name].ok, name
    # the loss weights do not depend on the weights
    assert all(r.ok for n, r in rows.items() if n.startswith('loss_weight.'))


def test_trainable_text_encoder_gets_the_official_gradients():
    """textft fixture (``freeze_text_encoder False``): the gradient of the total weighted loss reaches every
    RoBERTa parameter as in the official code, and the pooler (frozen, unused) gets none."""
    import soc_mm  # noqa: F401
    from soc_mm.official.reference import build_reference_model, fixture_batch, zero_dropout
    torch.set_num_threads(1)
    fixture = osp.join(SOCPP_ROOT, 'ytvos_b2_t3_nc1_w0_textft')
    model, _ = build_reference_model(fixture, fast_kernels=True)
    ref = torch.load(osp.join(fixture, 'losses_train.pt'), weights_only=True)
    inputs = torch.load(osp.join(fixture, 'inputs.pt'), weights_only=True)
    zero_dropout(model).train()
    losses = model(*fixture_batch(inputs, with_targets=True), mode='loss')
    total = sum(losses.values())
    torch.testing.assert_close(total.detach(), ref['total_weighted_loss'].float(), rtol=1e-5, atol=0)
    total.backward()
    params = dict(model.text_encoder.model.named_parameters())
    assert sorted(ref['text_encoder_grads']) == sorted(k for k in params if not k.startswith('pooler.'))
    for name, grad in ref['text_encoder_grads'].items():
        assert params[name].grad is not None, name
        diff = (params[name].grad - grad).abs().max().item()
        assert diff <= 1e-4 * grad.abs().max().item() + 1e-9, (name, diff)
    for name in ref['text_encoder_params_without_grad']:
        assert not params[name].requires_grad and params[name].grad is None, name
