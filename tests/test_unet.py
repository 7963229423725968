"""The spec UNet (reference section 2.0): parameter counts, every intermediate shape, conditioning."""

import pytest
import torch

from fundiff.errors import FundiffError
from fundiff.nn import ClassConditionalUNet, TimeConditionalUNet, UnconditionalUNet, build_model


def conv(cin, cout, k):
    return cin * cout * k * k + cout


def bn(c):
    return 2 * c


def conv_block(cin, cout):
    return conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)


def fc(fin, fout):
    return fin * fout + fout + fout * fout + fout


def spec_count(d, c=1):
    """The parameter count read off the spec's diagram, block by block."""
    return (
        conv_block(c, d)  # e1
        + conv(d, d, 3) + bn(d) + conv_block(d, d)  # e2 = DownBlock(D, D)
        + conv(d, 2 * d, 3) + bn(2 * d) + conv_block(2 * d, 2 * d)  # e3 = DownBlock(D, 2D)
        + conv(2 * d, 2 * d, 7) + bn(2 * d)  # Unflatten
        + conv(4 * d, d, 4) + bn(d) + conv_block(d, d)  # up1 = UpBlock(4D, D)
        + conv(2 * d, d, 4) + bn(d) + conv_block(d, d)  # up2 = UpBlock(2D, D)
        + conv_block(2 * d, d)  # final ConvBlock(2D, D)
        + conv(d, c, 3)  # plain Conv2d(D, 1, 3, 1, 1)
    )


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("d,pinned", [(64, 1_975_361), (128, 7_891_073)])
def test_unconditional_parameter_count(d, pinned):
    assert spec_count(d) == pinned
    assert n_params(UnconditionalUNet(1, d)) == pinned


@pytest.mark.parametrize("d,pinned_time,pinned_class", [(64, 1_996_417, 2_019_201), (128, 7_974_145, 8_060_673)])
def test_conditional_parameter_counts(d, pinned_time, pinned_class):
    assert spec_count(d) + fc(1, 2 * d) + fc(1, d) == pinned_time
    assert pinned_class == pinned_time + fc(10, 2 * d) + fc(10, d)
    assert n_params(TimeConditionalUNet(1, d)) == pinned_time
    assert n_params(TimeConditionalUNet(1, d, time_mode="additive")) == pinned_time
    assert n_params(ClassConditionalUNet(1, 10, d)) == pinned_class


def test_intermediate_shapes():
    d = 8
    m = UnconditionalUNet(1, d).eval()
    shapes = {}
    for name in ["e1", "e2", "e3", "flatten", "unflatten", "up1", "up2", "dec", "out"]:
        getattr(m, name).register_forward_hook(lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
    y = m(torch.randn(3, 1, 28, 28))
    assert shapes == {
        "e1": (3, d, 28, 28),
        "e2": (3, d, 14, 14),
        "e3": (3, 2 * d, 7, 7),
        "flatten": (3, 2 * d, 1, 1),
        "unflatten": (3, 2 * d, 7, 7),
        "up1": (3, d, 14, 14),
        "up2": (3, d, 28, 28),
        "dec": (3, d, 28, 28),
        "out": (3, 1, 28, 28),
    }
    assert y.shape == (3, 1, 28, 28)
    # The final layer is a plain Conv2d: no BN, no GELU.
    assert isinstance(m.out, torch.nn.Conv2d)
    # Flatten is AvgPool2d(7) followed by GELU.
    assert [type(x).__name__ for x in m.flatten] == ["AvgPool2d", "GELU"]


def test_rejects_other_sizes():
    with pytest.raises(ValueError, match="28x28"):
        UnconditionalUNet(1, 4)(torch.randn(1, 1, 32, 32))


def _hook_unflatten(model):
    captured = {}
    model.unflatten.register_forward_hook(lambda mod, inp, out: captured.__setitem__("u0", out))
    return captured


def test_time_modulation_multiplicative_and_additive():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28)
    for mode in ("multiplicative", "additive"):
        m = TimeConditionalUNet(1, 4, time_mode=mode).eval()
        t = torch.tensor([0.3, 0.9])
        modulated = {}
        m.up1.register_forward_hook(lambda mod, inp, out: modulated.__setitem__("cat_in", inp[0]))
        cap = _hook_unflatten(m)
        m(x, t)
        t1 = m.fc1_t(t[:, None])
        u0_expected = cap["u0"] * t1 if mode == "multiplicative" else cap["u0"] + t1
        # up1's input is cat[e3, modulated u0]
        torch.testing.assert_close(modulated["cat_in"][:, 8:], u0_expected)


def test_class_conditioning_and_mask():
    torch.manual_seed(0)
    m = ClassConditionalUNet(1, 10, 4).eval()
    x = torch.randn(3, 1, 28, 28)
    c = torch.tensor([1, 7, 3])
    t = torch.rand(3)
    onehot = torch.nn.functional.one_hot(c, 10).float()
    torch.testing.assert_close(m(x, c, t), m(x, onehot, t))
    # mask == 0 is the same as the all-zero class vector
    mask = torch.tensor([1, 0, 1])
    torch.testing.assert_close(m(x, c, t, mask=mask), m(x, onehot * mask[:, None], t))
    # the class changes the output
    assert not torch.allclose(m(x, c, t), m(x, (c + 1) % 10, t))
    # c1 * u0 + t1 at the unflatten output
    cap = _hook_unflatten(m)
    seen = {}
    m.up1.register_forward_hook(lambda mod, inp, out: seen.__setitem__("cat_in", inp[0]))
    m(x, c, t)
    expected = m.fc1_c(onehot) * cap["u0"] + m.fc1_t(t[:, None])
    torch.testing.assert_close(seen["cat_in"][:, 8:], expected)


def test_build_model_round_trip_and_errors():
    for m in (UnconditionalUNet(1, 4), TimeConditionalUNet(1, 4, "additive"), ClassConditionalUNet(1, 10, 4)):
        rebuilt = build_model(m.config())
        assert type(rebuilt) is type(m) and rebuilt.config() == m.config()
    with pytest.raises(FundiffError, match="unknown model kind"):
        build_model({"kind": "transformer"})


def test_batchnorm_folding_keeps_the_function():
    from fundiff.nn.fuse import fold_batchnorm

    torch.manual_seed(0)
    for m in (UnconditionalUNet(1, 6), ClassConditionalUNet(1, 10, 6)):
        m.train()
        args = (torch.randint(0, 10, (16,)), torch.rand(16)) if m.kind == "class" else ()
        for _ in range(3):  # give BN non-trivial running statistics
            m(torch.randn(16, 1, 28, 28), *args)
        m.eval()
        folded = fold_batchnorm(m)
        assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in folded.modules())
        assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # the original is untouched
        x = torch.randn(4, 1, 28, 28)
        a = (x, *(v[:4] for v in args))
        torch.testing.assert_close(folded(*a), m(*a), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_inference_in_slices_keeps_the_function():
    """No-grad eval-mode CPU calls run in slices of the batch (activations under 24 MB); same outputs."""
    from fundiff.nn import ClassConditionalUNet, TimeConditionalUNet, UnconditionalUNet

    torch.manual_seed(0)
    x, c, t = torch.randn(130, 1, 28, 28), torch.arange(130) % 10, torch.rand(130)
    for model, args in ((ClassConditionalUNet(1, 10, 64), (c, t)), (TimeConditionalUNet(1, 64), (t,)),
                        (UnconditionalUNet(1, 64), ())):
        model.eval()
        whole = model(x, *args).detach()  # grad enabled: one call
        calls = []
        hook = model.e1.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
        with torch.no_grad():
            sliced = model(x, *args)
        hook.remove()
        assert calls == [125, 5]
        torch.testing.assert_close(sliced, whole, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # a scalar t and a (N,) mask are sliced or passed as they should be
        m = ClassConditionalUNet(1, 10, 64).eval()
        mask = torch.arange(130) % 2
        torch.testing.assert_close(m(x, c, 0.5, mask), torch.cat([m(x[:65], c[:65], 0.5, mask[:65]),
                                                                  m(x[65:], c[65:], 0.5, mask[65:])]), rtol=1e-4, atol=1e-5)
