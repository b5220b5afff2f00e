"""KV slices stored in the tree-wide store never alias the buffers they were cut from."""

from __future__ import annotations

import torch

from loomtui.backends.cache_adapter import buffers, kv_slice


def test_slices_are_copies_even_when_contiguous_already():
    # One KV head and one batch row: positions a:b of the buffer are contiguous already.
    buf = [(torch.randn(1, 1, 10, 4), torch.randn(1, 1, 10, 4))]
    part = kv_slice(buf, 2, 5)
    before = part[0][0].clone()
    buf[0][0].fill_(0.0)
    assert torch.equal(part[0][0], before)
    row = kv_slice([(torch.randn(3, 1, 6, 4), torch.randn(3, 1, 6, 4))], 0, 6, row=1)
    assert row[0][0].shape == (1, 1, 6, 4) and row[0][0].is_contiguous()


def test_buffers_lay_parts_out_in_order_and_broadcast_to_the_batch():
    a = [(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))]
    b = [(torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4))]
    (k, v), = buffers([a, [], b], 12, batch=2)
    assert k.shape == (2, 2, 12, 4)
    for row in range(2):
        assert torch.equal(k[row, :, :3], a[0][0][0]) and torch.equal(k[row, :, 3:8], b[0][0][0])
        assert torch.equal(v[row, :, 3:8], b[0][1][0])
