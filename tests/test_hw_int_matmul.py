"""Exact integer products at float32 speed (hw/int_matmul.py): the plan each operand size gets, and exactness."""

import pytest
import torch
import torch.nn.functional as F

from hw.int_matmul import FLOAT32_EXACT, MatmulPlan, exact_integer_conv2d, exact_integer_matmul, plan_integer_matmul


def integer_operands(a_top, b_top, depth, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(-a_top, a_top + 1, (5, depth), generator=generator)
    b = torch.randint(-b_top, b_top + 1, (depth, 7), generator=generator)
    return a, b


def plan_for(a, b):
    return plan_integer_matmul(a.shape[1], float(a.abs().sum(dim=1).max()), float(a.abs().max()),
                               float(b.abs().max()))


def test_small_sums_take_one_float32_matmul_and_are_exact():
    a, b = integer_operands(255, 127, 200)  # every partial sum < 200 * 255 * 127 < 2^24
    assert plan_for(a, b) == MatmulPlan("float32")
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_sums_beyond_float32_precision_are_chunked_and_still_exact():
    a = torch.full((3, 3000), 255)
    a[:, ::7] = 251  # odd values: the exact sum needs more than float32's 24 bits
    _, b = integer_operands(255, 127, 3000, seed=1)
    # 255 * 127 = 32,385 per product: at most 518 columns per float32 chunk, so 3,000 take 6.
    assert FLOAT32_EXACT // (255 * 127) == 518
    assert plan_for(a, b) == MatmulPlan("chunked", pieces=6, chunk=500)
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_products_too_wide_for_float32_chunks_fall_back_to_float64():
    a, b = integer_operands(65535, 32767, 300, seed=2)  # 16-bit operands: one product is ~2^31
    assert plan_for(a, b) == MatmulPlan("float64")
    assert torch.equal(exact_integer_matmul(a.float(), b.float()), (a @ b).double())


def test_sums_beyond_float64_are_refused():
    with pytest.raises(ValueError, match="exceeds float64's exact range"):
        plan_integer_matmul(depth=10, row_sum_max=2.0**40, a_max=2.0**37, b_max=2.0**20)


def conv_operands(cin, kernel, low, high, signed, seed=0):
    generator = torch.Generator().manual_seed(seed)
    levels = torch.randint(low, high + 1, (3, cin, 11, 9), generator=generator).float()
    if signed:  # one image all negative (large sums), one of mixed signs
        levels[1] *= -1
        levels[2] *= torch.randint(0, 2, levels[2].shape, generator=generator).float() * 2 - 1
    # Large weights of one sign per filter, so that patches add up instead of cancelling.
    weight = torch.randint(100, 128, (7, cin, kernel, kernel), generator=generator).float()
    weight *= torch.tensor([1.0, -1.0] * 3 + [1.0])[:, None, None, None]
    return levels, weight


@pytest.mark.parametrize("signed", [False, True], ids=["relu-inputs", "signed-inputs"])
@pytest.mark.parametrize("kernel, stride, padding, dilation", [(3, 1, 1, 1), (3, 2, 1, 1), (1, 2, 0, 1), (3, 1, 2, 2)])
def test_a_convolution_whose_patch_sums_approach_float32s_limit_is_exact(signed, kernel, stride, padding, dilation):
    # Patch sums up to ~125,000 (x 127 is ~2^24): every product and partial sum is close to what float32 holds exactly.
    cin = 64 if kernel == 3 else 512
    levels, weight = conv_operands(cin, kernel, 180, 240, signed)
    args = ((stride, stride), (padding, padding), (dilation, dilation))
    out = exact_integer_conv2d(levels, weight, 127.0, *args, nonnegative=not signed)
    assert out is not None and out.dtype == torch.float32
    exact = F.conv2d(levels.double(), weight.double(), None, stride, padding, dilation)
    assert float(exact.abs().max()) > 2**22  # the test reaches the large sums it is about
    assert torch.equal(out.double(), exact)


def test_a_convolution_that_could_pass_float32s_limit_is_left_to_the_caller():
    levels, weight = conv_operands(128, 3, 250, 255, signed=False)  # patch sums ~290,000 x 127 > 2^24
    assert exact_integer_conv2d(levels, weight, 127.0, (1, 1), (1, 1), (1, 1), nonnegative=True) is None


def test_reduced_precision_fp32_convolutions_are_not_trusted():
    levels, weight = conv_operands(4, 3, 0, 3, signed=False)
    settings = torch.backends.mkldnn.conv
    before = settings.fp32_precision
    settings.fp32_precision = "tf32"
    try:
        assert exact_integer_conv2d(levels, weight, 127.0, (1, 1), (1, 1), (1, 1), nonnegative=True) is None
    finally:
        settings.fp32_precision = before
    assert exact_integer_conv2d(levels, weight, 127.0, (1, 1), (1, 1), (1, 1), nonnegative=True) is not None
