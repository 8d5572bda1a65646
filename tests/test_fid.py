"""FID (issue 10 item 14): computed through torch-fidelity when config.eval.fid is on, against the training
split; refused up front when it cannot be computed; a clear message when torch-fidelity cannot load its
Inception weights. torch-fidelity is replaced by a stand-in module: nothing is downloaded."""
import sys
import types
import urllib.error

import pytest
import torch

from configs.vp.digits import get_config as vp_digits
from configs.vp.toy2d import get_config as vp_toy2d
from evaluation.fid import INCEPTION_URL, check_fid_config, fid_stats
from scoredata import get_dataset, to_unit_images


class FakeFidelity(types.ModuleType):
    """torch_fidelity.calculate_metrics, recording its inputs (or raising ``error``)."""

    def __init__(self, error=None):
        super().__init__("torch_fidelity")
        self.calls, self.error = [], error

    def calculate_metrics(self, input1, input2, **kwargs):
        self.calls.append((input1, input2, kwargs))
        if self.error is not None:
            raise self.error
        return {"frechet_inception_distance": 12.5}


def digits_config(**eval_kw):
    c = vp_digits()
    c.model.nf, c.model.ch_mult, c.model.attn_resolutions = 8, (1, 2), ()
    c.model.num_scales = 20
    c.training.update(dict(n_iters=0, snapshot_sampling=False, eval_freq=0, num_threads=1))
    c.eval.update(dict(enable_bpd=False, num_samples=8, **eval_kw))
    c.sampling.num_samples = c.sampling.batch_size = 8
    return c


def test_when_fid_is_computed():
    c = digits_config()
    assert check_fid_config(c, available=True) is False           # config.eval.fid is off by default
    c.eval.fid = True
    assert check_fid_config(c, available=True) is True
    with pytest.raises(ValueError, match=r"config\.eval\.fid=True needs torch-fidelity.*pip install torch-fidelity"):
        check_fid_config(c, available=False)
    c.eval.enable_sampling = False
    with pytest.raises(ValueError, match=r"config\.eval\.fid=True needs config\.eval\.enable_sampling"):
        check_fid_config(c, available=True)
    t = vp_toy2d()
    t.eval.fid = True
    with pytest.raises(ValueError, match=r"config\.eval\.fid=True needs image data"):
        check_fid_config(t, available=True)


def test_fid_stats_feeds_uint8_rgb_and_reports_a_fetch_failure(monkeypatch):
    c = digits_config(fid=True)
    x, ref = get_dataset(c, "test")[:5], get_dataset(c, "train")[:7]
    fake = FakeFidelity()
    monkeypatch.setitem(sys.modules, "torch_fidelity", fake)
    assert fid_stats(c, x, ref) == {"fid": 12.5, "fid_n_samples": 5, "fid_n_reference": 7}
    a, b, kw = fake.calls[0]
    assert kw["fid"] is True and len(a) == 5 and len(b) == 7
    img = a[2]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8)              # gray repeated to RGB
    assert torch.equal(img[0], (to_unit_images(x, c)[2, 0] * 255).round().to(torch.uint8))
    offline = FakeFidelity(error=urllib.error.URLError("[Errno -3] Temporary failure in name resolution"))
    monkeypatch.setitem(sys.modules, "torch_fidelity", offline)
    out = fid_stats(c, x, ref)
    assert out["fid"] is None and "name resolution" in out["fid_skipped"] and INCEPTION_URL in out["fid_skipped"]
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)               # not installed
    assert "not installed" in fid_stats(c, x, ref)["fid_skipped"]


def test_evaluate_computes_fid_against_the_training_split(tmp_path, monkeypatch):
    from training.evaluate import evaluate
    from training.train import train
    c = digits_config(fid=True)
    wd = str(tmp_path)
    train(c, wd, progress=False)                                       # an untrained checkpoint (step 0)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    with pytest.raises(ValueError, match=r"config\.eval\.fid=True needs torch-fidelity"):
        evaluate(c, wd)
    fake = FakeFidelity()
    monkeypatch.setitem(sys.modules, "torch_fidelity", fake)
    m = evaluate(c, wd)
    assert m["fid"] == 12.5 and m["fid_reference"] == "train" and m["fid_n_reference"] == 1497
    assert len(fake.calls) == 1 and len(fake.calls[0][0]) == 8 and len(fake.calls[0][1]) == 1497
